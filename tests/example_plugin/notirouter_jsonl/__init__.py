"""An example third-party notirouter plugin, shipped as its own distribution.

It provides the ``jsonl`` sink, which appends one JSON object per message to a file. It imports
only the public ``notirouter`` API and is found through the ``notirouter`` entry-point group.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from notirouter import Message, SendResult, Sink, SinkContext, SinkOptions, hookimpl


class JsonlOptions(SinkOptions):
    """Options of the ``jsonl`` sink."""

    path: str


class JsonlSink(Sink[JsonlOptions]):
    """Appends each message, as one JSON line, to ``path``."""

    type_name = "jsonl"
    Options = JsonlOptions

    def __init__(self, name: str, options: JsonlOptions, context: SinkContext) -> None:
        super().__init__(name, options, context)
        self.lines_written = 0  # in this process

    def status(self) -> dict[str, Any]:
        """What ``notirouter status`` shows of this sink in each serving process."""
        return {"lines_written": self.lines_written}

    def render(self, message: Message) -> Any:
        """The object written for ``message``."""
        return {"sink": self.name, **message.summary()}

    async def send(self, message: Message) -> SendResult:
        """Append a line; an unwritable file is retried."""
        line = json.dumps(self.render(message), ensure_ascii=False) + "\n"
        try:
            await asyncio.to_thread(self._append, line)
        except OSError as exc:
            return SendResult.retry(f"cannot write: {exc.strerror}")
        self.lines_written += 1
        return SendResult.delivered()

    def _append(self, line: str) -> None:
        with Path(self.options.path).open("a", encoding="utf-8") as file:
            file.write(line)


@hookimpl
def register_sinks(register: Callable[[type[Sink[Any]]], None]) -> None:
    """Provide the ``jsonl`` sink."""
    register(JsonlSink)
