"""A sink's rate limit and ``Retry-After`` pause, held in the database for every process.

``sink_gates`` has one row per sink: a token bucket (``tokens`` as of ``updated_at``) and the
end of a pause. Taking a token locks the row, so processes take turns and the sink sees the
configured rate in total. Times are epoch seconds: hosts are expected to keep their clocks in
sync, as leases already require.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg

from notirouter.queue.postgres.connection import unavailable

LONGEST_WAIT = 5.0


class SharedGate:
    """The :class:`~notirouter.queue.protocol.SinkGate` of a sink on a PostgreSQL queue."""

    def __init__(self, pool: asyncpg.Pool, sink: str, rate: float | None, burst: int) -> None:
        self.pool = pool
        self.sink = sink
        self.rate = rate
        self.burst = max(1, burst)
        self._paused_until = 0.0

    async def wait_turn(self) -> None:
        """Wait out a pause, then wait for and take one of the sink's tokens.

        A pause another process recorded needs no look-up here: the claim itself skips a
        paused sink, and the next due time it reports is the end of the pause.
        """
        while True:
            wait = await self._take() if self.rate else self._paused_until - time.time()
            if wait <= 0:
                return
            await asyncio.sleep(min(wait, LONGEST_WAIT))

    async def _take(self) -> float:
        """Take a token and return 0, or return how long to wait for one."""
        assert self.rate
        with unavailable("take a rate-limit token"):
            async with self.pool.acquire() as connection, connection.transaction():
                await connection.execute(
                    "INSERT INTO sink_gates (sink, tokens, updated_at) VALUES ($1, $2, $3)"
                    " ON CONFLICT (sink) DO NOTHING",
                    self.sink,
                    float(self.burst),
                    time.time(),
                )
                row = await connection.fetchrow(
                    "SELECT tokens, updated_at, paused_until FROM sink_gates WHERE sink = $1"
                    " FOR UPDATE",
                    self.sink,
                )
                assert row is not None
                now = time.time()
                if row["paused_until"] > now:
                    return float(row["paused_until"]) - now
                elapsed = max(0.0, now - row["updated_at"])
                tokens = min(float(self.burst), row["tokens"] + elapsed * self.rate)
                taken = tokens >= 1
                await connection.execute(
                    "UPDATE sink_gates SET tokens = $2, updated_at = $3 WHERE sink = $1",
                    self.sink,
                    tokens - 1 if taken else tokens,
                    now,
                )
        return 0.0 if taken else (1 - tokens) / self.rate

    async def give_back(self) -> None:
        """Return a token a claim did not use."""
        if not self.rate:
            return
        with unavailable("return a rate-limit token"):
            await self.pool.execute(
                "UPDATE sink_gates SET tokens = LEAST($2, tokens + 1) WHERE sink = $1",
                self.sink,
                float(self.burst),
            )

    async def pause(self, until: float) -> None:
        """Hold the sink, in every process, until ``until``."""
        self._paused_until = max(self._paused_until, until)
        with unavailable("record the sink's pause"):
            await self.pool.execute(
                "INSERT INTO sink_gates (sink, tokens, updated_at, paused_until)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT (sink) DO UPDATE"
                " SET paused_until = GREATEST(sink_gates.paused_until, EXCLUDED.paused_until)",
                self.sink,
                float(self.burst),
                time.time(),
                until,
            )
