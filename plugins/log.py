"""The ``log`` sink: one JSON line per message on standard output.

Useful to try notirouter without any external service, and as a catch-all route that a log
shipper collects. Nothing is cut. The message fields already show bidi controls as
``⟨U+202E⟩`` (the pipeline reveals them); the event and enrichment data are printed exactly as
received, with every character that could hide or reorder text written as a JSON escape.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from typing import Any

from notirouter import Message, SendResult, Sink, SinkOptions, hookimpl

# JSON escapes C0 controls itself; these it leaves raw, though they reorder or hide text on a
# terminal (bidi controls, zero-width and format characters, C1 controls) or split a line in
# a log viewer (U+2028, U+2029, NEL). Written as \uXXXX escapes they show, and a JSON reader
# still gets the exact string. Zero-width (non-)joiners stay: emoji sequences need them.
_HIDDEN = re.compile(
    "[\x7f-\x9f\u00ad\u061c\u180e\u200b\u200e\u200f\u202a-\u202e\u2028\u2029\u2060-\u2069\ufeff]"
)


def visible_json(value: Any) -> str:
    """``value`` as one line of JSON in which every hidden character is a visible escape."""
    text = json.dumps(value, ensure_ascii=False)
    return _HIDDEN.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


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
            sys.stdout.write(visible_json(self.render(message)) + "\n")
            sys.stdout.flush()
        except OSError as exc:
            return SendResult.retry(f"cannot write to stdout: {exc.strerror}")
        return SendResult.delivered()


@hookimpl
def register_sinks(register: Callable[[type[Sink[Any]]], None]) -> None:
    """Provide the ``log`` sink."""
    register(LogSink)
