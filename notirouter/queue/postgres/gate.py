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

from notirouter.delivery.ratelimit import token_delays
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

    async def take(self, up_to: int) -> list[float]:
        """Wait out a pause, then for a token; take up to ``up_to`` (see the protocol).

        A pause another process recorded needs no look-up here: the claim itself skips a
        paused sink, and the next due time it reports is the end of the pause.
        """
        while True:
            if self.rate:
                delays, wait = await self._take(up_to)
                if delays:
                    return delays
            else:
                wait = self._paused_until - time.time()
                if wait <= 0:
                    return [0.0] * up_to
            await asyncio.sleep(min(max(wait, 0.0), LONGEST_WAIT))

    async def _take(self, up_to: int) -> tuple[list[float], float]:
        """Take up to ``up_to`` tokens (their delays), or none and how long to wait for one."""
        assert self.rate
        with unavailable("take a rate-limit token"):
            async with self.pool.acquire() as connection, connection.transaction():
                row = await connection.fetchrow(
                    "SELECT tokens, updated_at, paused_until FROM sink_gates WHERE sink = $1"
                    " FOR UPDATE",
                    self.sink,
                )
                if row is None:
                    # The sink's first claim: a full bucket. Concurrent first claims meet at
                    # the key, and the one that inserts second locks the row it then finds.
                    await connection.execute(
                        "INSERT INTO sink_gates (sink, tokens, updated_at) VALUES ($1, $2, $3)"
                        " ON CONFLICT (sink) DO NOTHING",
                        self.sink,
                        float(self.burst),
                        time.time(),
                    )
                    row = await connection.fetchrow(
                        "SELECT tokens, updated_at, paused_until FROM sink_gates"
                        " WHERE sink = $1 FOR UPDATE",
                        self.sink,
                    )
                    assert row is not None
                now = time.time()
                if row["paused_until"] > now:
                    return [], float(row["paused_until"]) - now
                elapsed = max(0.0, now - row["updated_at"])
                tokens = min(float(self.burst), row["tokens"] + elapsed * self.rate)
                delays = token_delays(tokens, self.rate, up_to)
                await connection.execute(
                    "UPDATE sink_gates SET tokens = $2, updated_at = $3 WHERE sink = $1",
                    self.sink,
                    tokens - len(delays),
                    now,
                )
        return delays, 0.0 if delays else (1 - tokens) / self.rate

    async def give_back(self, count: int = 1) -> None:
        """Return the tokens of turns a claim did not use."""
        if not self.rate or count < 1:
            return
        with unavailable("return rate-limit tokens"):
            await self.pool.execute(
                "UPDATE sink_gates SET tokens = LEAST($2, tokens + $3) WHERE sink = $1",
                self.sink,
                float(self.burst),
                float(count),
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
