"""Log a recurring failure once per interval, with a count, instead of once per event.

During an outage every event fails the same way; a line per event would bury everything else
in the log (and fill disks) exactly when an operator needs to read it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping


class ThrottledLog:
    """At most one line per key and interval; the next line says how many were held back."""

    _MAX_KEYS = 1024  # keys may name routes or stages, never unbounded input: stay bounded

    def __init__(self, logger: logging.Logger, interval: float = 60.0) -> None:
        self.logger = logger
        self.interval = interval
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def log(
        self,
        level: int,
        key: str,
        message: str,
        *args: object,
        exc_info: BaseException | None = None,
        extra: Mapping[str, object] | None = None,
    ) -> None:
        """Log ``message % args`` unless ``key`` was logged less than ``interval`` ago.

        ``exc_info`` adds that exception's traceback to the line (when it is logged at all);
        ``extra`` its fields, as for :meth:`logging.Logger.log`.
        """
        if not self.logger.isEnabledFor(level):
            return
        held = self._admit(key)
        if held is None:
            return
        if held:
            message += f" ({held} similar line{'s' if held != 1 else ''} held back)"
        self.logger.log(level, message, *args, exc_info=exc_info, extra=extra)

    def admits(self, key: str) -> bool:
        """Whether ``key`` may be logged now (and, if so, it counts as logged now).

        For a line that is logged every time but carries something heavy (a traceback) only
        once per interval.
        """
        return self._admit(key) is not None

    def _admit(self, key: str) -> int | None:
        """``None`` to hold the line back, else how many were held back since the last one."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        if len(self._last) >= self._MAX_KEYS and key not in self._last:
            self._last.clear()
            self._held.clear()
        self._last[key] = now
        return self._held.pop(key, 0)
