"""The ``log`` sink: one JSON line per message on standard output.

Useful to try notirouter without any external service, and as a catch-all route that a log
shipper collects.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from notirouter import Message, SendResult, Sink, SinkOptions, hookimpl


class LogOptions(SinkOptions):
    """Options of the ``log`` sink."""

    include_event: bool = False
    """Also print the event and enrichment data, not only the message."""


class LogSink(Sink[LogOptions]):
    """Writes each message as a single JSON line to stdout."""

    type_name = "log"
    Options = LogOptions

    def render(self, message: Message) -> Any:
        """The JSON object printed for ``message``."""
        line: dict[str, Any] = {"sink": self.name, **message.summary()}
        if self.options.include_event:
            line["event"] = message.event
            line["enrichment"] = message.enrichment
        return line

    async def send(self, message: Message) -> SendResult:
        """Print the line; a closed or full stdout is a transient failure."""
        try:
            sys.stdout.write(json.dumps(self.render(message), ensure_ascii=False) + "\n")
            sys.stdout.flush()
        except OSError as exc:
            return SendResult.retry(f"cannot write to stdout: {exc.strerror}")
        return SendResult.delivered()


@hookimpl
def register_sinks(register: Callable[[type[Sink[Any]]], None]) -> None:
    """Provide the ``log`` sink."""
    register(LogSink)
