"""Logging set-up: lines on stderr, readable text or JSON, with every configured secret redacted.

Secrets are redacted in the final formatted line (message, arguments and tracebacks alike), so a
library that puts a webhook URL or token into an exception message still cannot leak it.
Messages carry outside text (request paths, event types, services' answers): their newlines
and control characters are escaped, so that one log record is one line and no ANSI escape
reaches the terminal or the log viewer.

The JSON format (``logging: {format: json}``) writes one object per line for log shippers:
``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, the fields a line was logged with
(``extra=``: ``event_id``, ``route``, ``sink``, ``outcome``, ``latency_ms``, ...) and
``exception``. Each field is redacted on its own, before encoding, so a secret is found even
where JSON would escape it; JSON escapes every control character, so a value cannot end the
line or reach the terminal raw.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from notirouter.printable import inert, inert_json, inert_lines
from notirouter.redaction import Redactor


class RedactingFormatter(logging.Formatter):
    """A formatter that replaces every known secret value with ``***``."""

    def __init__(self, fmt: str, secrets: Iterable[str] = ()) -> None:
        super().__init__(fmt)
        self.redact = Redactor(secrets)

    def format(self, record: logging.LogRecord) -> str:
        """Format as usual (control characters escaped), then redact."""
        return self.redact(super().format(record))

    def formatMessage(self, record: logging.LogRecord) -> str:
        """The message part on one line: newlines and control characters escaped."""
        record.message = inert(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        """The traceback keeps its lines, but no control character of an exception message."""
        return inert_lines(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        """A stack keeps its lines, with control characters escaped."""
        return inert_lines(super().formatStack(stack_info))


# What every LogRecord carries; anything else on a record came with ``extra=``.
_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}  # uvicorn's ANSI copy of the message


class JsonFormatter(logging.Formatter):
    """One JSON object per record and line, every field redacted."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.redact = Redactor(secrets)

    def format(self, record: logging.LogRecord) -> str:
        """The record as a one-line JSON object."""
        fields: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                fields.setdefault(key, value)
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            fields["exception"] = record.exc_text
        if record.stack_info:
            fields["stack"] = self.formatStack(record.stack_info)
        encoded = json.dumps(self._redacted(fields), ensure_ascii=False, default=str)
        return inert_json(encoded)

    def _redacted(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {str(k): self._redacted(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self._redacted(v) for v in value]
        if value is None or isinstance(value, bool | int | float):
            return value
        return self.redact(str(value))  # an object's text may quote a secret as well


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(
    level: str = "INFO", secrets: Iterable[str] = (), log_format: str = "text"
) -> None:
    """Send notirouter's and uvicorn's logs to stderr, as text or JSON lines, redacted."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter(secrets))
        # A warning printed by the warnings module would be a line no shipper can parse.
        logging.captureWarnings(True)
    else:
        handler.setFormatter(RedactingFormatter(TEXT_FORMAT, secrets))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
    # The access log would print the hook token in the path; the receiver logs its own lines.
    logging.getLogger("uvicorn.access").disabled = True
