"""Routing Sekoia.io events on what changed, with the real enricher (README examples)."""

from __future__ import annotations

import logging
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from notirouter.config.loader import load_config_text
from notirouter.runtime import Runtime
from tests.loopback import LoopbackServer
from tests.sekoia_fixtures import ALERT_UUID, API_KEY, FakeSekoia, alert_event, metadata

CONFIG = """
queue: {path: QUEUE}
enrichers:
  # The updates below are routed back to back, where real ones come seconds apart: without
  # a window, each is enriched from a request sent after it was seen.
  sekoia: {type: sekoia, api_key: KEY, base_url: "API", region: fra1, cache_window: 0s}
sinks: {console: {type: log}}
routes:
  - name: status-changed
    match: {type: alert, action: updated}
    when: "updated.status_name is defined"
    sinks: [console]
    continue: true
  - name: urgency-crossed-70
    match: {type: alert, action: updated}
    enrich: [sekoia]
    when: >-
      updated.dynamic_urgency_value is defined and alert.urgency.current_value >= 70
      and (previous_alert is undefined or previous_alert.urgency.current_value < 70)
    sinks: [console]
"""


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[tuple[Runtime, FakeSekoia]]:
    server = LoopbackServer()
    await server.start()
    sekoia = FakeSekoia(server)
    text = (
        textwrap.dedent(CONFIG)
        .replace("QUEUE", str(tmp_path / "q.db"))
        .replace("KEY", API_KEY)
        .replace("API", sekoia.url)
    )
    runtime = Runtime(load_config_text(text, "test.yaml"))
    await runtime.open_plugins()
    yield runtime, sekoia
    await runtime.close_plugins()
    await server.stop()


async def route(runtime: Runtime, event: dict[str, Any]) -> list[str]:
    routed = await runtime.pipeline.route(runtime.pipeline.parse("sekoia", event))
    return [r.name for r, _ in routed.messages]


def update(urgency: int, at: str) -> dict[str, Any]:
    event = alert_event("updated", updated={"dynamic_urgency_value": urgency})
    event["metadata"] = metadata(created_at=at)
    return event


async def test_urgency_crossing_70_matches_once(runtime: tuple[Runtime, FakeSekoia]) -> None:
    app, sekoia = runtime
    alert = sekoia.alerts[ALERT_UUID]
    assert await route(app, update(60, "2024-01-01T00:00:00Z")) == []  # 60: fetched, cached
    alert["urgency"] = {"current_value": 80, "display": "Urgent"}
    assert await route(app, update(80, "2999-01-01T00:00:00Z")) == ["urgency-crossed-70"]
    alert["urgency"] = {"current_value": 90, "display": "Urgent"}
    assert await route(app, update(90, "2999-01-02T00:00:00Z")) == []  # was already above
    assert len(sekoia.paths) == 3  # each update happened after the cached copy: fetched again
    status = alert_event("updated", updated={"status_name": "Closed"})
    assert await route(app, status) == ["status-changed"]


async def test_urgency_above_70_without_a_previous_copy_matches(
    runtime: tuple[Runtime, FakeSekoia],
) -> None:
    app, sekoia = runtime
    sekoia.alerts[ALERT_UUID]["urgency"] = {"current_value": 75, "display": "Urgent"}
    assert await route(app, update(75, "2024-01-01T00:00:00Z")) == ["urgency-crossed-70"]


async def test_a_refused_key_is_one_log_line_not_one_per_event(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = LoopbackServer()
    await server.start()
    sekoia = FakeSekoia(server)
    text = (
        textwrap.dedent(CONFIG)
        .replace("QUEUE", str(tmp_path / "q.db"))
        .replace("KEY", "revoked-key-0123456789")
        .replace("cache_window: 0s}", "cache_window: 0s, auth_pause: 0}")
        .replace("API", sekoia.url)
    )
    runtime = Runtime(load_config_text(text, "test.yaml"))
    await runtime.open_plugins()
    try:
        for n in range(20):
            routed = await runtime.pipeline.route(
                runtime.pipeline.parse("sekoia", update(80 + n % 10, "2024-01-01T00:00:00Z"))
            )
            assert routed.enrichment_errors == {"sekoia": "Sekoia.io API key rejected (HTTP 401)"}
    finally:
        await runtime.close_plugins()
        await server.stop()
    assert len(sekoia.paths) == 20
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(loud) == 1
    assert "rejected the API key (HTTP 401: missing, expired or invalid)" in loud[0]
    assert "revoked-key-0123456789" not in caplog.text
