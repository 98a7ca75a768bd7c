"""Retry timing: backoff bounds, Retry-After parsing."""

from __future__ import annotations

import pytest

from notirouter.api.http import parse_retry_after
from notirouter.delivery.retry import RetryPolicy


def test_backoff_grows_and_stays_bounded_even_after_thousands_of_attempts() -> None:
    policy = RetryPolicy(initial=1.0, maximum=60.0)
    assert 0.5 <= policy.delay(1) <= 1.0
    assert 2.0 <= policy.delay(3) <= 4.0
    assert 30.0 <= policy.delay(5000) <= 60.0


def test_retry_after_is_a_floor() -> None:
    assert RetryPolicy(initial=1.0, maximum=60.0).delay(1, retry_after=30) == 30


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        ("0.5", 0.5),
        ("-3", 0.0),
        ("inf", None),
        ("nan", None),
        ("soon", None),
        (None, None),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


def test_parse_retry_after_http_date() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: now
