"""Secrets never reach log lines, whatever puts them there."""

from __future__ import annotations

import logging

from notirouter.logs import RedactingFormatter


def test_secrets_are_redacted_from_messages_arguments_and_tracebacks() -> None:
    formatter = RedactingFormatter("%(message)s", ["https://hooks.example/T0KEN", "T0KEN"])
    try:
        raise ValueError("failed for https://hooks.example/T0KEN")
    except ValueError:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "posting to %s", ("https://hooks.example/T0KEN",), None
        )
        import sys

        record.exc_info = sys.exc_info()
    line = formatter.format(record)
    assert "T0KEN" not in line
    assert "posting to ***" in line
    assert "failed for ***" in line
