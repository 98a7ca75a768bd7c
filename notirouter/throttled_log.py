"""Log a recurring failure once per interval, with a count, instead of once per event.

During an outage every event fails the same way; a line per event would bury everything else
in the log (and fill disks) exactly when an operator needs to read it.
"""

from __future__ import annotations

import logging
import time


class ThrottledLog:
    """At most one line per key and interval; the next line says how many were held back."""

    def __init__(self, logger: logging.Logger, interval: float = 60.0) -> None:
        self.logger = logger
        self.interval = interval
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def log(self, level: int, key: str, message: str, *args: object) -> None:
        """Log ``message % args`` unless ``key`` was logged less than ``interval`` ago."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._held[key] = self._held.get(key, 0) + 1
            return
        self._last[key] = now
        held = self._held.pop(key, 0)
        if held:
            message += f" ({held} similar line{'s' if held != 1 else ''} held back)"
        self.logger.log(level, message, *args)
