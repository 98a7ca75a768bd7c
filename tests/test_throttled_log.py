"""A failure repeated by every event is logged once per interval, with a count."""

from __future__ import annotations

import logging

import pytest

from notirouter.throttled_log import ThrottledLog


def test_repeats_are_held_back_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    throttled = ThrottledLog(logging.getLogger("t"), interval=0.2)
    for _ in range(50):
        throttled.log(logging.WARNING, "api", "enricher %s failed", "sekoia")
    throttled.log(logging.WARNING, "other", "enricher %s failed", "cmdb")
    assert [r.getMessage() for r in caplog.records] == [
        "enricher sekoia failed",
        "enricher cmdb failed",
    ]
    throttled.interval = 0.0
    throttled.log(logging.WARNING, "api", "enricher %s failed", "sekoia")
    assert caplog.records[-1].getMessage() == "enricher sekoia failed (49 similar lines held back)"
