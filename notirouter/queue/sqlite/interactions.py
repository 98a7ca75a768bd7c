"""Chat actions on SQLite: the ``interactions`` and ``interaction_marks`` tables."""

from __future__ import annotations

import secrets
import sqlite3
import time
from typing import TYPE_CHECKING

from notirouter.queue.records import StoredInteraction

if TYPE_CHECKING:
    from notirouter.queue.sqlite.queue import SqliteQueue

WAKE = "interactions"


class SqliteInteractions:
    """:class:`~notirouter.queue.protocol.InteractionStore` in the queue file."""

    def __init__(self, queue: SqliteQueue) -> None:
        self.queue = queue

    async def enqueue(self, sink: str, payload: str, *, mark: str | None, until: float) -> bool:
        """Store a click, unless ``mark`` is remembered already (a replay)."""

        def write(c: sqlite3.Connection) -> bool:
            now = time.time()
            if mark is not None:
                c.execute("DELETE FROM interaction_marks WHERE mark = ? AND until < ?", (mark, now))
                if not c.execute(
                    "INSERT INTO interaction_marks (mark, until) VALUES (?, ?)"
                    " ON CONFLICT (mark) DO NOTHING",
                    (mark, until),
                ).rowcount:
                    return False
            c.execute(
                "INSERT INTO interactions (sink, payload, created_at, next_attempt_at)"
                " VALUES (?, ?, ?, ?)",
                (sink, payload, now, now),
            )
            return True

        stored: bool = await self.queue.write(write, wakes=(WAKE,))
        return stored

    async def toggle_mark(self, mark: str, until: float) -> bool:
        """Clear an armed ``mark`` (``True``), or arm it until ``until`` (``False``)."""

        def write(c: sqlite3.Connection) -> bool:
            if c.execute(
                "DELETE FROM interaction_marks WHERE mark = ? AND until >= ?", (mark, time.time())
            ).rowcount:
                return True
            c.execute(
                "INSERT INTO interaction_marks (mark, until) VALUES (?, ?)"
                " ON CONFLICT (mark) DO UPDATE SET until = excluded.until",
                (mark, until),
            )
            return False

        armed: bool = await self.queue.write(write)
        return armed

    async def claim(self, limit: int, lease_seconds: float) -> list[StoredInteraction]:
        """Take up to ``limit`` due clicks under a lease."""
        token = secrets.randbits(62)

        def write(c: sqlite3.Connection) -> list[StoredInteraction]:
            now = time.time()
            rows = c.execute(
                "UPDATE interactions SET attempts = attempts + 1, lease = ?, next_attempt_at = ?"
                " WHERE id IN (SELECT id FROM interactions WHERE state = 'pending'"
                " AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?)"
                " RETURNING id, sink, payload, attempts, created_at, result",
                (token, now + lease_seconds, now, limit),
            ).fetchall()
            return [StoredInteraction(r[0], r[1], r[2], r[3], r[4], token, r[5]) for r in rows]

        claimed: list[StoredInteraction] = await self.queue.write(write)
        return claimed

    async def finish(
        self, item: StoredInteraction, *, state: str, result: str, retry_in: float = 0.0
    ) -> bool:
        """Record an attempt under the item's lease."""

        def write(c: sqlite3.Connection) -> bool:
            now = time.time()
            finished = None if state == "pending" else now
            return bool(
                c.execute(
                    "UPDATE interactions SET state = ?, result = ?, next_attempt_at = ?,"
                    " finished_at = ? WHERE id = ? AND lease = ? AND state = 'pending'",
                    (state, result, now + retry_in, finished, item.id, item.lease),
                ).rowcount
            )

        wakes = (WAKE,) if state == "pending" else ()
        done: bool = await self.queue.write(write, wakes=wakes)
        return done

    async def next_due(self) -> float | None:
        """When the earliest pending click becomes due."""
        row = await self.queue.read(
            lambda c: c.execute(
                "SELECT MIN(next_attempt_at) FROM interactions WHERE state = 'pending'"
            ).fetchone()
        )
        return None if row is None or row[0] is None else float(row[0])

    async def results(self, sink: str | None = None) -> list[tuple[int, str, str, str]]:
        """(id, sink, state, result) of every click, oldest first."""
        rows = await self.queue.read(
            lambda c: c.execute(
                "SELECT id, sink, state, COALESCE(result, '') FROM interactions"
                " WHERE ? IS NULL OR sink = ? ORDER BY id",
                (sink, sink),
            ).fetchall()
        )
        return [(int(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows]

    async def prune(self, older_than: float) -> int:
        """Forget finished clicks older than ``older_than`` seconds and expired marks."""

        def write(c: sqlite3.Connection) -> int:
            now = time.time()
            c.execute("DELETE FROM interaction_marks WHERE until < ?", (now,))
            return int(
                c.execute(
                    "DELETE FROM interactions WHERE state != 'pending' AND finished_at < ?",
                    (now - older_than,),
                ).rowcount
            )

        pruned: int = await self.queue.write(write)
        return pruned
