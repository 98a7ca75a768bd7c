"""Dead letters and housekeeping on PostgreSQL (the same operations as on SQLite)."""

from __future__ import annotations

import time
from collections.abc import Iterable

import asyncpg

from notirouter.queue.postgres.connection import unavailable
from notirouter.queue.protocol import EVENTS_WAKE, sink_wake
from notirouter.queue.records import DeadLetter, FailedEvent
from notirouter.queue.retention import PRUNE_BATCH_ROWS, prune_in_batches

_NOTIFY = "SELECT pg_notify('notirouter', k) FROM unnest($1::text[]) AS k"


class PostgresDeadLetters:
    """Operator access to the dead letters of a PostgreSQL queue."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def deliveries(
        self, ids: Iterable[int] | None = None, *, limit: int | None = None, bodies: bool = False
    ) -> list[DeadLetter]:
        """Dead deliveries, oldest first (only ``ids`` when given; event bodies on request)."""
        wanted = None if ids is None else list(ids)
        with unavailable("read dead letters"):
            rows = await self.pool.fetch(
                "SELECT d.id, d.event_id, d.route, d.sink, d.attempts, d.created_at,"
                " d.finished_at, COALESCE(d.last_error, '') AS last_error, d.message,"
                " CASE WHEN $3 THEN e.body END AS body FROM deliveries d"
                " LEFT JOIN events e ON e.id = d.event_id WHERE d.state = 'dead'"
                " AND ($1::bigint[] IS NULL OR d.id = ANY($1::bigint[]))"
                " ORDER BY d.finished_at, d.id LIMIT $2",
                wanted,
                limit,
                bodies,
            )
        return [
            DeadLetter(
                r["id"],
                r["event_id"],
                r["route"],
                r["sink"],
                r["attempts"],
                r["created_at"],
                r["finished_at"],
                r["last_error"],
                r["message"],
                event_body=None if r["body"] is None else bytes(r["body"]),
            )
            for r in rows
        ]

    async def events(self, ids: Iterable[str] | None = None) -> list[FailedEvent]:
        """Events that could not be routed, oldest first."""
        wanted = None if ids is None else list(ids)
        with unavailable("read failed events"):
            rows = await self.pool.fetch(
                "SELECT id, hook, source, received_at, attempts, COALESCE(last_error, '') AS e,"
                " body FROM events WHERE state = 'failed'"
                " AND ($1::text[] IS NULL OR id = ANY($1::text[])) ORDER BY received_at",
                wanted,
            )
        return [FailedEvent(r[0], r[1], r[2], r[3], r[4], r[5], bytes(r[6])) for r in rows]

    async def counts(self) -> tuple[int, int]:
        """How many dead deliveries and failed events there are."""
        with unavailable("count dead letters"):
            row = await self.pool.fetchrow(
                "SELECT (SELECT COUNT(*) FROM deliveries WHERE state = 'dead'),"
                " (SELECT COUNT(*) FROM events WHERE state = 'failed')"
            )
        assert row is not None
        return int(row[0]), int(row[1])

    async def all_ids(self) -> tuple[list[int], list[str]]:
        """Ids of every dead delivery and failed event."""
        with unavailable("read dead letters"):
            deliveries = await self.pool.fetch("SELECT id FROM deliveries WHERE state = 'dead'")
            events = await self.pool.fetch("SELECT id FROM events WHERE state = 'failed'")
        return [r[0] for r in deliveries], [r[0] for r in events]

    async def replay_deliveries(self, ids: Iterable[int]) -> list[int]:
        """Make dead deliveries pending again, with a fresh age and attempt count."""
        now = time.time()
        with unavailable("replay dead letters"):
            async with self.pool.acquire() as connection, connection.transaction():
                rows = await connection.fetch(
                    "UPDATE deliveries SET state = 'pending', attempts = 0, created_at = $2,"
                    " next_attempt_at = $2, finished_at = NULL, lease = 0"
                    " WHERE id = ANY($1::bigint[]) AND state = 'dead' RETURNING id, sink",
                    list(ids),
                    now,
                )
                await connection.execute(_NOTIFY, sorted({sink_wake(r["sink"]) for r in rows}))
        return sorted(r["id"] for r in rows)

    async def replay_events(self, ids: Iterable[str]) -> list[str]:
        """Route failed events again; their age (and dedupe window) starts afresh."""
        now = time.time()
        with unavailable("replay failed events"):
            async with self.pool.acquire() as connection, connection.transaction():
                rows = await connection.fetch(
                    "UPDATE events SET state = 'pending', attempts = 0, received_at = $2,"
                    " next_attempt_at = $2, lease = 0 WHERE id = ANY($1::text[])"
                    " AND state = 'failed' RETURNING id",
                    list(ids),
                    now,
                )
                await connection.execute(_NOTIFY, [EVENTS_WAKE] if rows else [])
        return [r["id"] for r in rows]

    async def purge(self, older_than: float = 0.0) -> tuple[int, int]:
        """Delete dead deliveries and failed events that gave up over ``older_than`` s ago."""
        cutoff = time.time() - older_than
        with unavailable("purge dead letters"):
            async with self.pool.acquire() as connection, connection.transaction():
                deliveries = await connection.execute(
                    "DELETE FROM deliveries WHERE state = 'dead' AND finished_at <= $1", cutoff
                )
                events = await connection.execute(
                    "DELETE FROM events WHERE state = 'failed' AND next_attempt_at <= $1", cutoff
                )
        return affected(deliveries), affected(events)


def affected(status: str) -> int:
    """The row count of a command status such as ``DELETE 3`` or ``UPDATE 0``."""
    return int(status.rsplit(" ", 1)[-1])


async def bury_orphans(pool: asyncpg.Pool, sinks: Iterable[str]) -> dict[str, int]:
    """Dead-letter pending deliveries whose sink is not in ``sinks``, counted by sink."""
    with unavailable("dead-letter deliveries of unconfigured sinks"):
        rows = await pool.fetch(
            "UPDATE deliveries SET state = 'dead', finished_at = $2,"
            " last_error = 'sink ' || sink || ' is not configured'"
            " WHERE state = 'pending' AND NOT (sink = ANY($1::text[])) RETURNING sink",
            sorted(set(sinks)),
            time.time(),
        )
    buried: dict[str, int] = {}
    for row in rows:
        buried[row["sink"]] = buried.get(row["sink"], 0) + 1
    return buried


async def prune(pool: asyncpg.Pool, older_than: float, *, rows: int = PRUNE_BATCH_ROWS) -> int:
    """Forget finished work older than ``older_than`` seconds (events with no job left).

    At most ``rows`` deliveries and ``rows`` events per transaction; rows another process is
    pruning at the same time are skipped, not waited for.
    """
    cutoff = time.time() - older_than

    async def batch() -> tuple[int, int]:
        with unavailable("prune finished work"):
            async with pool.acquire() as connection, connection.transaction():
                deliveries = await connection.execute(
                    "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries"
                    " WHERE state IN ('done', 'folded') AND finished_at < $1 LIMIT $2"
                    " FOR UPDATE SKIP LOCKED)",
                    cutoff,
                    rows,
                )
                events = await connection.execute(
                    "DELETE FROM events WHERE id IN (SELECT id FROM events"
                    " WHERE state = 'routed' AND received_at < $1"
                    " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.id)"
                    " LIMIT $2 FOR UPDATE SKIP LOCKED)",
                    cutoff,
                    rows,
                )
        return affected(deliveries), affected(events)

    return await prune_in_batches(batch, rows=rows)
