"""Chat actions on PostgreSQL: the ``interactions`` and ``interaction_marks`` tables, shared by
every process (a click received by one process may be worked by another)."""

from __future__ import annotations

import secrets
import time

import asyncpg

from notirouter.queue.postgres import dead_letters
from notirouter.queue.postgres.connection import unavailable
from notirouter.queue.records import StoredInteraction

WAKE = "interactions"
# The insert notifies every process's worker in its own transaction.
INSERT = (
    "WITH inserted AS (INSERT INTO interactions (sink, payload, created_at, next_attempt_at)"
    " VALUES ($1, $2, $3, $3) RETURNING id)"
    " SELECT id, pg_notify('notirouter', 'interactions') FROM inserted"
)
CLAIM = (
    "UPDATE interactions SET attempts = attempts + 1, lease = $1, next_attempt_at = $2"
    " WHERE id IN (SELECT id FROM interactions WHERE state = 'pending' AND next_attempt_at <= $3"
    " ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED)"
    " RETURNING id, sink, payload, attempts, created_at, result"
)


class PostgresInteractions:
    """:class:`~notirouter.queue.protocol.InteractionStore` in the shared database."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def enqueue(self, sink: str, payload: str, *, mark: str | None, until: float) -> bool:
        """Store a click, unless ``mark`` is remembered already (a replay)."""
        now = time.time()
        with unavailable("store the interaction"):
            async with self.pool.acquire() as connection, connection.transaction():
                if mark is not None:
                    await connection.execute(
                        "DELETE FROM interaction_marks WHERE mark = $1 AND until < $2", mark, now
                    )
                    # Two processes given the same request at once: the primary key lets one in.
                    status = await connection.execute(
                        "INSERT INTO interaction_marks (mark, until) VALUES ($1, $2)"
                        " ON CONFLICT (mark) DO NOTHING",
                        mark,
                        until,
                    )
                    if not dead_letters.affected(status):
                        return False
                await connection.fetchval(INSERT, sink, payload, now)
        return True

    async def toggle_mark(self, mark: str, until: float) -> bool:
        """Clear an armed ``mark`` (``True``), or arm it until ``until`` (``False``)."""
        with unavailable("record a confirmation"):
            async with self.pool.acquire() as connection, connection.transaction():
                status = await connection.execute(
                    "DELETE FROM interaction_marks WHERE mark = $1 AND until >= $2",
                    mark,
                    time.time(),
                )
                if dead_letters.affected(status):
                    return True
                await connection.execute(
                    "INSERT INTO interaction_marks (mark, until) VALUES ($1, $2)"
                    " ON CONFLICT (mark) DO UPDATE SET until = excluded.until",
                    mark,
                    until,
                )
        return False

    async def claim(self, limit: int, lease_seconds: float) -> list[StoredInteraction]:
        """Take up to ``limit`` due clicks under a lease; rows being claimed are skipped."""
        token = secrets.randbits(62)
        now = time.time()
        with unavailable("claim interactions"):
            rows = await self.pool.fetch(CLAIM, token, now + lease_seconds, now, limit)
        return [StoredInteraction(r[0], r[1], r[2], r[3], r[4], token, r[5]) for r in rows]

    async def finish(
        self, item: StoredInteraction, *, state: str, result: str, retry_in: float = 0.0
    ) -> bool:
        """Record an attempt under the item's lease."""
        now = time.time()
        with unavailable("record the interaction"):
            status = await self.pool.execute(
                "UPDATE interactions SET state = $1, result = $2, next_attempt_at = $3,"
                " finished_at = $4 WHERE id = $5 AND lease = $6 AND state = 'pending'",
                state,
                result,
                now + retry_in,
                None if state == "pending" else now,
                item.id,
                item.lease,
            )
        return bool(dead_letters.affected(status))

    async def next_due(self) -> float | None:
        """When the earliest pending click becomes due."""
        with unavailable("read the next interaction due"):
            due = await self.pool.fetchval(
                "SELECT MIN(next_attempt_at) FROM interactions WHERE state = 'pending'"
            )
        return None if due is None else float(due)

    async def results(self, sink: str | None = None) -> list[tuple[int, str, str, str]]:
        """(id, sink, state, result) of every click, oldest first."""
        with unavailable("read interactions"):
            rows = await self.pool.fetch(
                "SELECT id, sink, state, COALESCE(result, '') FROM interactions"
                " WHERE $1::text IS NULL OR sink = $1 ORDER BY id",
                sink,
            )
        return [(int(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows]

    async def prune(self, older_than: float) -> int:
        """Forget finished clicks older than ``older_than`` seconds and expired marks."""
        now = time.time()
        with unavailable("prune interactions"):
            await self.pool.execute("DELETE FROM interaction_marks WHERE until < $1", now)
            status = await self.pool.execute(
                "DELETE FROM interactions WHERE state <> 'pending' AND finished_at < $1",
                now - older_than,
            )
        return dead_letters.affected(status)
