"""A sink's rate limit and ``Retry-After`` pause held in this process (the SQLite backend)."""

from __future__ import annotations

import asyncio
import time

from notirouter.delivery.ratelimit import TokenBucket


class LocalGate:
    """The :class:`~notirouter.queue.protocol.SinkGate` of a queue only one process uses."""

    def __init__(self, rate: float | None, burst: int) -> None:
        self.bucket = TokenBucket(rate, burst) if rate else None
        self.paused_until = 0.0

    async def take(self, up_to: int) -> list[float]:
        """Wait out a pause, then for a token; take up to ``up_to`` (see the protocol)."""
        pause = self.paused_until - time.time()
        if pause > 0:
            await asyncio.sleep(pause)
        if self.bucket is None:
            return [0.0] * up_to
        while True:
            delays = self.bucket.reserve(up_to)
            if delays:
                return delays
            await asyncio.sleep(self.bucket.wait_time())

    async def give_back(self, count: int = 1) -> None:
        """Return the tokens of claimed slots that found nothing."""
        if self.bucket is not None and count > 0:
            self.bucket.give_back(count)

    async def pause(self, until: float) -> None:
        """Hold the sink until ``until``."""
        self.paused_until = max(self.paused_until, until)
