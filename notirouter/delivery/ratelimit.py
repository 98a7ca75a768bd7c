"""Per-sink rate limiting: a token bucket the dispatcher waits on before each claim."""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    """Allows ``rate`` acquisitions per second on average, ``burst`` back to back."""

    def __init__(self, rate: float, burst: int = 1) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._tokens = float(self.burst)
        self._updated = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    async def wait_ready(self) -> None:
        """Wait until a token is available, without taking it."""
        self._refill()
        while self._tokens < 1:
            await asyncio.sleep((1 - self._tokens) / self.rate)
            self._refill()

    def take(self) -> None:
        """Take a token (after :meth:`wait_ready`; never waits)."""
        self._refill()
        self._tokens -= 1

    def give_back(self) -> None:
        """Return a token that was taken but not used."""
        self._tokens = min(self.burst, self._tokens + 1)
