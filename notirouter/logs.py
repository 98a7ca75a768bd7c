"""Logging set-up: plain lines on stderr, with every configured secret redacted.

Secrets are redacted in the final formatted line (message, arguments and tracebacks alike), so a
library that puts a webhook URL or token into an exception message still cannot leak it.
Messages carry outside text (request paths, event types, services' answers): their newlines
and control characters are escaped, so that one log record is one line and no ANSI escape
reaches the terminal or the log viewer.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any

from notirouter.printable import inert, inert_lines

REDACTED = "***"


class Redactor:
    """Replaces every secret in a text with ``***``; built once, applied to every line."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret containing another is replaced whole, no suffix left.
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        """``text`` with every secret replaced by ``***``."""
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


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


def configure_logging(level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    """Send notirouter's and uvicorn's logs to stderr through the redacting formatter."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", secrets)
    )
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
