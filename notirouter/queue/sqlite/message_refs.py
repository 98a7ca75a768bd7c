"""Conversation references on SQLite: the ``message_refs`` table of the queue file."""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from notirouter.queue.sqlite.queue import SqliteQueue


class SqliteMessageRefs:
    """:class:`~notirouter.queue.protocol.MessageRefs` in the queue file (one process)."""

    def __init__(self, queue: SqliteQueue) -> None:
        self.queue = queue

    async def get(self, sink: str, thread_key: str, max_age: float) -> str | None:
        """The reference, if stored or used within ``max_age`` seconds."""
        cutoff = time.time() - max_age
        row = await self.queue.read(
            lambda c: c.execute(
                "SELECT reference FROM message_refs WHERE sink = ? AND thread_key = ?"
                " AND used_at >= ?",
                (sink, thread_key, cutoff),
            ).fetchone()
        )
        return None if row is None else str(row[0])

    async def put(self, sink: str, thread_key: str, reference: str) -> None:
        """Store or replace the reference; it counts as used now."""

        def write(c: sqlite3.Connection) -> None:
            now = time.time()
            c.execute(
                "INSERT INTO message_refs (sink, thread_key, reference, created_at, used_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (sink, thread_key) DO UPDATE SET"
                " reference = excluded.reference, used_at = excluded.used_at,"
                " created_at = CASE WHEN message_refs.reference = excluded.reference"
                " THEN message_refs.created_at ELSE excluded.created_at END",
                (sink, thread_key, reference, now, now),
            )

        await self.queue.write(write)

    async def prune(self, older_than: float) -> int:
        """Forget references unused for ``older_than`` seconds."""

        def write(c: sqlite3.Connection) -> int:
            cutoff = time.time() - older_than
            return int(c.execute("DELETE FROM message_refs WHERE used_at < ?", (cutoff,)).rowcount)

        pruned: int = await self.queue.write(write)
        return pruned


# The in-order claim's condition on a candidate ``d``: no older unfinished delivery of the same
# sink and thread key (the expression matches the ``deliveries_thread`` index of migration 5).
# Older is by the time the event was received, then by id: routing workers may write the jobs
# of two events in either order, the order they came in is the one that counts.
IN_ORDER_SQLITE = (
    " AND (json_extract(d.message, '$.thread_key') IS NULL OR NOT EXISTS (SELECT 1"
    " FROM deliveries e JOIN events ee ON ee.id = e.event_id"
    " JOIN events de ON de.id = d.event_id"
    " WHERE e.sink = d.sink AND e.state = 'pending'"
    " AND json_extract(e.message, '$.thread_key') = json_extract(d.message, '$.thread_key')"
    " AND (ee.received_at < de.received_at"
    " OR (ee.received_at = de.received_at AND e.id < d.id))))"
)
