"""Dead letters and housekeeping: what gave up, putting it back, and forgetting old work.

Two kinds of things give up: a *delivery* (a sink refused it for good, or it outlived
``delivery.max_age``) and, rarely, an *event* that could not be routed at all (its source
plugin gone, a formatter bug). Both are listed, shown, replayed and purged here. Delivery ids
are integers, event ids are 32 hex characters, so one id says which kind it names.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable

from notirouter.queue.records import DeadLetter, FailedEvent
from notirouter.queue.retention import PRUNE_BATCH_ROWS, prune_in_batches
from notirouter.queue.sqlite.queue import EVENTS_WAKE, SqliteQueue, sink_wake

_DEAD_COLUMNS = (
    "SELECT d.id, d.event_id, d.route, d.sink, d.attempts, d.created_at, d.finished_at,"
    " COALESCE(d.last_error, ''), d.message, {body} FROM deliveries d"
    " LEFT JOIN events e ON e.id = d.event_id WHERE d.state = 'dead'"
)


class DeadLetters:
    """Operator access to the dead letters of a queue."""

    def __init__(self, queue: SqliteQueue) -> None:
        self.queue = queue

    async def deliveries(
        self, ids: Iterable[int] | None = None, *, limit: int | None = None, bodies: bool = False
    ) -> list[DeadLetter]:
        """Dead deliveries, oldest first (only ``ids`` when given; event bodies on request)."""
        wanted = None if ids is None else list(ids)
        query = _DEAD_COLUMNS.format(body="e.body" if bodies else "NULL")
        params: list[object] = []
        if wanted is not None:
            query += f" AND d.id IN ({','.join('?' * len(wanted))})"
            params.extend(wanted)
        query += " ORDER BY d.finished_at, d.id"
        if limit is not None:
            query += " LIMIT ?"
            params.append(limit)

        def read(c: sqlite3.Connection) -> list[DeadLetter]:
            return [
                DeadLetter(
                    r[0],
                    r[1],
                    r[2],
                    r[3],
                    r[4],
                    r[5],
                    r[6],
                    r[7],
                    r[8],
                    event_body=None if r[9] is None else bytes(r[9]),
                )
                for r in c.execute(query, params)
            ]

        return await self.queue.read(read)

    async def events(self, ids: Iterable[str] | None = None) -> list[FailedEvent]:
        """Events that could not be routed, oldest first."""
        wanted = None if ids is None else list(ids)
        query = (
            "SELECT id, hook, source, received_at, attempts, COALESCE(last_error, ''), body"
            " FROM events WHERE state = 'failed'"
        )
        params: list[object] = []
        if wanted is not None:
            query += f" AND id IN ({','.join('?' * len(wanted))})"
            params.extend(wanted)

        def read(c: sqlite3.Connection) -> list[FailedEvent]:
            return [
                FailedEvent(r[0], r[1], r[2], r[3], r[4], r[5], bytes(r[6]))
                for r in c.execute(query + " ORDER BY received_at", params)
            ]

        return await self.queue.read(read)

    async def counts(self) -> tuple[int, int]:
        """How many dead deliveries and failed events there are."""

        def read(c: sqlite3.Connection) -> tuple[int, int]:
            dead = c.execute("SELECT COUNT(*) FROM deliveries WHERE state = 'dead'").fetchone()
            failed = c.execute("SELECT COUNT(*) FROM events WHERE state = 'failed'").fetchone()
            return int(dead[0]), int(failed[0])

        return await self.queue.read(read)

    async def all_ids(self) -> tuple[list[int], list[str]]:
        """Ids of every dead delivery and failed event (for ``replay --all``; no bodies)."""

        def read(c: sqlite3.Connection) -> tuple[list[int], list[str]]:
            deliveries = [r[0] for r in c.execute("SELECT id FROM deliveries WHERE state = 'dead'")]
            events = [r[0] for r in c.execute("SELECT id FROM events WHERE state = 'failed'")]
            return deliveries, events

        return await self.queue.read(read)

    async def replay_deliveries(self, ids: Iterable[int]) -> list[int]:
        """Make dead deliveries pending again, with a fresh age and attempt count."""
        wanted = list(ids)

        def write(c: sqlite3.Connection) -> list[tuple[int, str]]:
            now = time.time()
            replayed: list[tuple[int, str]] = []
            for delivery_id in wanted:
                row = c.execute(
                    "UPDATE deliveries SET state = 'pending', attempts = 0, created_at = ?,"
                    " next_attempt_at = ?, finished_at = NULL, lease = 0"
                    " WHERE id = ? AND state = 'dead' RETURNING id, sink",
                    (now, now, delivery_id),
                ).fetchone()
                if row is not None:
                    replayed.append((row[0], row[1]))
            return replayed

        rows: list[tuple[int, str]] = await self.queue.write(write)
        self.queue.wake({sink_wake(sink) for _, sink in rows})
        return [delivery_id for delivery_id, _ in rows]

    async def replay_events(self, ids: Iterable[str]) -> list[str]:
        """Route failed events again; their age (and dedupe window) starts afresh."""
        wanted = list(ids)

        def write(c: sqlite3.Connection) -> list[str]:
            now = time.time()
            return [
                row[0]
                for event_id in wanted
                for row in c.execute(
                    "UPDATE events SET state = 'pending', attempts = 0, received_at = ?,"
                    " next_attempt_at = ?, lease = 0 WHERE id = ? AND state = 'failed'"
                    " RETURNING id",
                    (now, now, event_id),
                )
            ]

        replayed: list[str] = await self.queue.write(write, wakes=(EVENTS_WAKE,))
        return replayed

    async def purge(self, older_than: float = 0.0) -> tuple[int, int]:
        """Delete dead deliveries and failed events that gave up over ``older_than`` s ago."""

        def write(c: sqlite3.Connection) -> tuple[int, int]:
            cutoff = time.time() - older_than
            deliveries = c.execute(
                "DELETE FROM deliveries WHERE state = 'dead' AND finished_at <= ?", (cutoff,)
            ).rowcount
            events = c.execute(
                "DELETE FROM events WHERE state = 'failed' AND next_attempt_at <= ?", (cutoff,)
            ).rowcount
            return deliveries, events

        purged: tuple[int, int] = await self.queue.write(write)
        return purged


async def bury_orphans(queue: SqliteQueue, sinks: Iterable[str]) -> dict[str, int]:
    """Dead-letter pending deliveries whose sink is no longer configured, by sink name.

    Nothing would ever attempt them: a renamed or removed sink's backlog would otherwise wait
    silently forever. As dead letters they are visible, and replayable once the sink is back.
    """
    known = sorted(set(sinks))

    def write(c: sqlite3.Connection) -> dict[str, int]:
        # Only "?" placeholders are interpolated; the sink names are bound parameters. With no
        # sink configured at all, every pending delivery is an orphan ("NOT IN ()" is invalid).
        unknown = f" AND sink NOT IN ({','.join('?' * len(known))})" if known else ""
        query = (
            "UPDATE deliveries SET state = 'dead', finished_at = ?,"  # noqa: S608
            " last_error = 'sink ' || sink || ' is not configured'"
            f" WHERE state = 'pending'{unknown} RETURNING sink"
        )
        buried: dict[str, int] = {}
        rows = c.execute(query, (time.time(), *known)).fetchall()
        for (sink,) in rows:
            buried[sink] = buried.get(sink, 0) + 1
        return buried

    result: dict[str, int] = await queue.write(write)
    return result


async def prune(queue: SqliteQueue, older_than: float, *, rows: int = PRUNE_BATCH_ROWS) -> int:
    """Forget finished work older than ``older_than`` seconds (and its dedupe keys).

    Events are kept while any of their deliveries is pending or dead. At most ``rows``
    deliveries and ``rows`` events go per transaction (see :mod:`notirouter.queue.retention`).
    """
    cutoff = time.time() - older_than

    def write(c: sqlite3.Connection) -> tuple[int, int]:
        deliveries = c.execute(
            "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries"
            " WHERE state IN ('done', 'folded') AND finished_at < ? LIMIT ?)",
            (cutoff, rows),
        ).rowcount
        events = c.execute(
            "DELETE FROM events WHERE id IN (SELECT id FROM events"
            " WHERE state = 'routed' AND received_at < ?"
            " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.id) LIMIT ?)",
            (cutoff, rows),
        ).rowcount
        return deliveries, events

    async def batch() -> tuple[int, int]:
        removed: tuple[int, int] = await queue.write(write)
        return removed

    return await prune_in_batches(batch, rows=rows)
