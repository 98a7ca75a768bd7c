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

    async def wait_turn(self) -> None:
        """Wait out a pause, then wait for and take a token."""
        pause = self.paused_until - time.time()
        if pause > 0:
            await asyncio.sleep(pause)
        if self.bucket is not None:
            await self.bucket.wait_ready()
            self.bucket.take()

    async def give_back(self) -> None:
        """Return the token of a claim that found nothing."""
        if self.bucket is not None:
            self.bucket.give_back()

    async def pause(self, until: float) -> None:
        """Hold the sink until ``until``."""
        self.paused_until = max(self.paused_until, until)
