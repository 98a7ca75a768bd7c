"""Reconciliation state on SQLite: streams (watermark and poller lease) and changes seen.

Every write goes through the queue's single writer, in one transaction each, and the lease is
a row: two processes on one file (``serve`` twice, or ``serve`` and ``worker``) agree on who
polls, and a poller whose lease ran out cannot commit.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from notirouter.queue.records import NewChange

if TYPE_CHECKING:
    from notirouter.queue.sqlite.queue import SqliteQueue

EVENTS_WAKE = "events"
RECONCILE = "reconcile"
WEBHOOK = "webhook"

HOLD = (
    "INSERT INTO reconcile_streams (stream, holder, lease_until) VALUES (?, ?, ?)"
    " ON CONFLICT (stream) DO UPDATE SET holder = excluded.holder,"
    " lease_until = excluded.lease_until"
    " WHERE reconcile_streams.holder = excluded.holder OR reconcile_streams.lease_until < ?"
)


def claim_change(
    c: sqlite3.Connection, key: str, event_id: str, now: float, origin: str
) -> str | None:
    """Record ``key`` as notified by ``event_id`` from ``origin`` (``webhook`` or
    ``reconcile``); ``None`` if it was not seen before, else the origin that saw it first."""
    inserted = c.execute(
        "INSERT INTO seen_changes (change_key, event_id, origin, seen_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (change_key) DO NOTHING",
        (key, event_id, origin, now),
    ).rowcount
    if inserted:
        return None
    row = c.execute("SELECT origin FROM seen_changes WHERE change_key = ?", (key,)).fetchone()
    return str(row[0]) if row is not None else origin


class SqliteChanges:
    """:class:`~notirouter.queue.protocol.ChangeLedger` in the queue file."""

    def __init__(self, queue: SqliteQueue) -> None:
        self.queue = queue

    async def hold(self, stream: str, holder: str, seconds: float) -> bool:
        """Take or renew the lease on polling ``stream``; ``False``: another holder has it."""

        def write(c: sqlite3.Connection) -> bool:
            now = time.time()
            c.execute(HOLD, (stream, holder, now + seconds, now))
            row = c.execute(
                "SELECT holder FROM reconcile_streams WHERE stream = ?", (stream,)
            ).fetchone()
            return row is not None and row[0] == holder

        held: bool = await self.queue.write(write)
        return held

    async def release(self, stream: str, holder: str) -> None:
        """Give the lease up (at shutdown), so another process takes over at once."""

        def write(c: sqlite3.Connection) -> None:
            c.execute(
                "UPDATE reconcile_streams SET lease_until = 0 WHERE stream = ? AND holder = ?",
                (stream, holder),
            )

        await self.queue.write(write)

    async def watermark(self, stream: str) -> float | None:
        """Up to when ``stream``'s changes are committed (``None``: never polled)."""
        row = await self.queue.read(
            lambda c: c.execute(
                "SELECT watermark FROM reconcile_streams WHERE stream = ?", (stream,)
            ).fetchone()
        )
        return None if row is None or row[0] is None else float(row[0])

    async def commit(
        self, stream: str, holder: str, changes: Sequence[NewChange], watermark: float
    ) -> list[str] | None:
        """Enqueue the changes not seen yet and move the watermark, in one transaction.

        Returns the keys enqueued; ``None`` (and nothing written) when ``holder`` no longer
        holds the stream's lease.
        """

        def write(c: sqlite3.Connection) -> list[str] | None:
            now = time.time()
            held = c.execute(
                "UPDATE reconcile_streams SET watermark = MAX(COALESCE(watermark, ?), ?)"
                " WHERE stream = ? AND holder = ? AND lease_until >= ?",
                (watermark, watermark, stream, holder, now),
            ).rowcount
            if not held:
                return None
            enqueued = []
            for change in changes:
                event_id = secrets.token_hex(16)
                if claim_change(c, change.key, event_id, now, RECONCILE) is not None:
                    continue
                c.execute(
                    "INSERT INTO events (id, dedupe_key, hook, source, received_at, body,"
                    " next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        event_id,
                        f"reconcile:{event_id}",
                        change.hook,
                        change.source,
                        now,
                        change.body,
                        now,
                    ),
                )
                enqueued.append(change.key)
            return enqueued

        keys: list[str] | None = await self.queue.write(write, wakes=(EVENTS_WAKE,))
        return keys

    async def prune(self, older_than: float) -> int:
        """Forget changes seen more than ``older_than`` seconds ago."""

        def write(c: sqlite3.Connection) -> int:
            cutoff = time.time() - older_than
            return int(c.execute("DELETE FROM seen_changes WHERE seen_at < ?", (cutoff,)).rowcount)

        pruned: int = await self.queue.write(write)
        return pruned
