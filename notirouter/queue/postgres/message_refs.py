"""Conversation references on PostgreSQL: the ``message_refs`` table, shared by every process."""

from __future__ import annotations

import time

import asyncpg

from notirouter.queue.postgres import dead_letters
from notirouter.queue.postgres.connection import unavailable


class PostgresMessageRefs:
    """:class:`~notirouter.queue.protocol.MessageRefs` in the shared database."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def get(self, sink: str, thread_key: str, max_age: float) -> str | None:
        """The reference, if stored or used within ``max_age`` seconds."""
        with unavailable("read a message reference"):
            found = await self.pool.fetchval(
                "SELECT reference FROM message_refs WHERE sink = $1 AND thread_key = $2"
                " AND used_at >= $3",
                sink,
                thread_key,
                time.time() - max_age,
            )
        return None if found is None else str(found)

    async def put(self, sink: str, thread_key: str, reference: str) -> None:
        """Store or replace the reference; it counts as used now."""
        with unavailable("store a message reference"):
            await self.pool.execute(
                "INSERT INTO message_refs (sink, thread_key, reference, created_at, used_at)"
                " VALUES ($1, $2, $3, $4, $4) ON CONFLICT (sink, thread_key) DO UPDATE SET"
                " reference = excluded.reference, used_at = excluded.used_at,"
                " created_at = CASE WHEN message_refs.reference = excluded.reference"
                " THEN message_refs.created_at ELSE excluded.created_at END",
                sink,
                thread_key,
                reference,
                time.time(),
            )

    async def prune(self, older_than: float) -> int:
        """Forget references unused for ``older_than`` seconds."""
        with unavailable("prune message references"):
            status = await self.pool.execute(
                "DELETE FROM message_refs WHERE used_at < $1", time.time() - older_than
            )
        return dead_letters.affected(status)


# A sink's due jobs like ``statements.CLAIM_DELIVERIES``, but only the oldest unfinished job of
# each thread key. The sink and key are compared as one expression, the ``deliveries_thread``
# index's (a sink name has no space): compared apart, a table without statistics yet (a fresh
# backlog) gets the sink's ``deliveries_due`` index for them, and a claim scans the backlog
# (95 ms instead of 0.5 ms at 5,000 pending jobs). Older is by the time the event was
# received, then by id: routing workers may write two events' jobs in either order. A job another
# process holds stays 'pending' under its lease, so the next job of its key waits for it.
CLAIM_DELIVERIES_IN_ORDER = (
    "UPDATE deliveries SET attempts = attempts + 1, lease = $1, next_attempt_at = $2"
    " WHERE id IN (SELECT id FROM deliveries d WHERE sink = $3 AND state = 'pending'"
    " AND next_attempt_at <= $4 AND NOT EXISTS (SELECT 1 FROM sink_gates g"
    " WHERE g.sink = $3 AND g.paused_until > $4)"
    " AND ((d.message::jsonb) ->> 'thread_key' IS NULL OR NOT EXISTS (SELECT 1"
    " FROM deliveries e JOIN events ee ON ee.id = e.event_id"
    " JOIN events de ON de.id = d.event_id WHERE e.state = 'pending'"
    " AND (e.sink || ' ' || ((e.message::jsonb) ->> 'thread_key'))"
    " = (d.sink || ' ' || ((d.message::jsonb) ->> 'thread_key'))"
    " AND (ee.received_at, e.id) < (de.received_at, d.id)))"
    " ORDER BY next_attempt_at LIMIT $5 FOR UPDATE SKIP LOCKED)"
    " RETURNING id, event_id, route, sink, message, attempts, created_at"
)
