"""The embedded queue: a SQLite file in WAL mode, written through group commit.

Events are committed before the receiver answers 202. Routing workers and sink dispatchers
*claim* work with a lease: claiming pushes ``next_attempt_at`` to the lease's end, so work held
by a process that died (``kill -9``) simply becomes due again when the lease runs out. A
``lease`` token guards completions, so a worker whose lease expired cannot overwrite the outcome
of the worker that took over.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

from notirouter.queue.records import (
    DeadLetter,
    EnqueueResult,
    NewDelivery,
    StoredDelivery,
    StoredEvent,
)
from notirouter.queue.writer import GroupCommitWriter, QueueUnavailable

__all__ = ["QueueUnavailable", "SqliteQueue"]

EVENTS_WAKE = "events"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    dedupe_key TEXT NOT NULL UNIQUE,
    hook TEXT NOT NULL,
    source TEXT NOT NULL,
    received_at REAL NOT NULL,
    body BLOB NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    lease INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS events_due ON events (next_attempt_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS events_received ON events (received_at);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    route TEXT NOT NULL,
    sink TEXT NOT NULL,
    message TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    next_attempt_at REAL NOT NULL,
    lease INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    finished_at REAL,
    UNIQUE (event_id, route, sink)
);
CREATE INDEX IF NOT EXISTS deliveries_due
    ON deliveries (sink, next_attempt_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS deliveries_dead ON deliveries (state, finished_at);
"""


def sink_wake(sink: str) -> str:
    """The wake-up key for a sink's dispatcher."""
    return "sink:" + sink


class SqliteQueue:
    """Durable events and delivery jobs in one SQLite file."""

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: str = "full",
        dedupe_window: float = 86_400.0,
        busy_timeout: float = 5.0,
    ) -> None:
        self.path = Path(path)
        self.synchronous = synchronous
        self.dedupe_window = dedupe_window
        self.busy_timeout = busy_timeout
        self._wakeups: dict[str, asyncio.Event] = {}
        self._writer = GroupCommitWriter(self._connect, self._wake)

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Create the file and schema if needed and start the writer thread."""
        self._writer.start(asyncio.get_running_loop())

    async def close(self) -> None:
        """Commit what is queued and close the file."""
        await asyncio.to_thread(self._writer.close)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(
            self.path, isolation_level=None, timeout=self.busy_timeout, check_same_thread=True
        )
        connection.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit survives power loss, not just a crash; group commit keeps it cheap.
        connection.execute(
            f"PRAGMA synchronous={'FULL' if self.synchronous == 'full' else 'NORMAL'}"
        )
        connection.executescript(_SCHEMA)
        return connection

    def wakeup(self, key: str) -> asyncio.Event:
        """The event set whenever a commit adds work for ``key`` (``events`` or a sink)."""
        return self._wakeups.setdefault(key, asyncio.Event())

    def _wake(self, keys: set[str]) -> None:
        for key in keys:
            self.wakeup(key).set()

    async def ping(self) -> bool:
        """Whether the queue can run a transaction now (for ``/readyz``)."""
        try:
            await self._writer.submit(lambda c: c.execute("SELECT 1").fetchone())
        except QueueUnavailable:
            return False
        return True

    # -- events ------------------------------------------------------------------------------

    async def enqueue(
        self, *, hook: str, source: str, dedupe_key: str, body: bytes
    ) -> EnqueueResult:
        """Store an event durably, or recognise it as a duplicate within the dedupe window."""
        event_id = secrets.token_hex(16)
        window = self.dedupe_window

        def operation(c: sqlite3.Connection) -> EnqueueResult:
            now = time.time()
            row = c.execute(
                "SELECT id, received_at FROM events WHERE dedupe_key = ?", (dedupe_key,)
            ).fetchone()
            if row is not None:
                if row[1] >= now - window:
                    return EnqueueResult(row[0], True)
                # Outside the window the same key is a new event: retire the old key.
                c.execute(
                    "UPDATE events SET dedupe_key = dedupe_key || ':' || id WHERE id = ?",
                    (row[0],),
                )
            c.execute(
                "INSERT INTO events (id, dedupe_key, hook, source, received_at, body,"
                " next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (event_id, dedupe_key, hook, source, now, body, now),
            )
            return EnqueueResult(event_id, False)

        result: EnqueueResult = await self._writer.submit(operation, wakes=(EVENTS_WAKE,))
        return result

    async def claim_events(self, limit: int, lease_seconds: float) -> list[StoredEvent]:
        """Take up to ``limit`` due events under a lease."""
        token = secrets.randbits(62)

        def operation(c: sqlite3.Connection) -> list[StoredEvent]:
            now = time.time()
            rows = c.execute(
                "UPDATE events SET attempts = attempts + 1, lease = ?, next_attempt_at = ?"
                " WHERE id IN (SELECT id FROM events WHERE state = 'pending'"
                " AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?)"
                " RETURNING id, hook, source, body, received_at, attempts",
                (token, now + lease_seconds, now, limit),
            ).fetchall()
            return [StoredEvent(r[0], r[1], r[2], bytes(r[3]), r[4], r[5], token) for r in rows]

        claimed: list[StoredEvent] = await self._writer.submit(operation)
        return claimed

    async def complete_event(self, event: StoredEvent, deliveries: Iterable[NewDelivery]) -> bool:
        """Record the event's delivery jobs and mark it routed, in one transaction.

        Returns ``False`` when the lease was lost (another worker owns the event now).
        """
        jobs = list(deliveries)

        def operation(c: sqlite3.Connection) -> bool:
            now = time.time()
            updated = c.execute(
                "UPDATE events SET state = 'routed', last_error = NULL"
                " WHERE id = ? AND lease = ? AND state = 'pending'",
                (event.id, event.lease),
            ).rowcount
            if not updated:
                return False
            c.executemany(
                "INSERT OR IGNORE INTO deliveries (event_id, route, sink, message, created_at,"
                " next_attempt_at) VALUES (?, ?, ?, ?, ?, ?)",
                [(event.id, j.route, j.sink, j.message_json, now, now) for j in jobs],
            )
            return True

        wakes = tuple(sorted({sink_wake(j.sink) for j in jobs}))
        done: bool = await self._writer.submit(operation, wakes=wakes)
        return done

    async def retry_event(
        self, event: StoredEvent, delay: float, error: str, *, dead: bool
    ) -> None:
        """Routing failed: try again after ``delay`` seconds, or give up (``dead``)."""

        def operation(c: sqlite3.Connection) -> None:
            c.execute(
                "UPDATE events SET state = ?, next_attempt_at = ?, last_error = ?"
                " WHERE id = ? AND lease = ?",
                (
                    "failed" if dead else "pending",
                    time.time() + delay,
                    error,
                    event.id,
                    event.lease,
                ),
            )

        await self._writer.submit(operation, wakes=() if dead else (EVENTS_WAKE,))

    async def next_event_due(self) -> float | None:
        """When the earliest pending event becomes due (``None``: no pending event)."""
        row = await self._writer.submit(
            lambda c: c.execute(
                "SELECT MIN(next_attempt_at) FROM events WHERE state = 'pending'"
            ).fetchone()
        )
        return None if row is None or row[0] is None else float(row[0])

    async def event_body(self, event_id: str) -> bytes | None:
        """The raw body of an event, for ``dead show``."""
        row = await self._writer.submit(
            lambda c: c.execute("SELECT body FROM events WHERE id = ?", (event_id,)).fetchone()
        )
        return None if row is None else bytes(row[0])

    # -- deliveries --------------------------------------------------------------------------

    async def claim_deliveries(
        self, sink: str, limit: int, lease_seconds: float
    ) -> list[StoredDelivery]:
        """Take up to ``limit`` due deliveries for ``sink`` under a lease."""
        token = secrets.randbits(62)

        def operation(c: sqlite3.Connection) -> list[StoredDelivery]:
            now = time.time()
            rows = c.execute(
                "UPDATE deliveries SET attempts = attempts + 1, lease = ?, next_attempt_at = ?"
                " WHERE id IN (SELECT id FROM deliveries WHERE sink = ? AND state = 'pending'"
                " AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?)"
                " RETURNING id, event_id, route, sink, message, attempts, created_at",
                (token, now + lease_seconds, sink, now, limit),
            ).fetchall()
            return [StoredDelivery(r[0], r[1], r[2], r[3], r[4], r[5], r[6], token) for r in rows]

        claimed: list[StoredDelivery] = await self._writer.submit(operation)
        return claimed

    async def finish_delivery(
        self, delivery: StoredDelivery, *, state: str, error: str | None, retry_in: float = 0.0
    ) -> bool:
        """Record an attempt: ``done``, ``dead``, or ``pending`` again in ``retry_in`` seconds."""

        def operation(c: sqlite3.Connection) -> bool:
            now = time.time()
            finished = None if state == "pending" else now
            return bool(
                c.execute(
                    "UPDATE deliveries SET state = ?, last_error = ?, next_attempt_at = ?,"
                    " finished_at = ? WHERE id = ? AND lease = ? AND state = 'pending'",
                    (state, error, now + retry_in, finished, delivery.id, delivery.lease),
                ).rowcount
            )

        # A retry changes when this sink next has work: wake its dispatcher to re-plan its sleep.
        wakes = (sink_wake(delivery.sink),) if state == "pending" else ()
        done: bool = await self._writer.submit(operation, wakes=wakes)
        return done

    async def next_delivery_due(self, sink: str) -> float | None:
        """When the earliest pending delivery for ``sink`` becomes due."""
        row = await self._writer.submit(
            lambda c: c.execute(
                "SELECT MIN(next_attempt_at) FROM deliveries WHERE sink = ? AND state = 'pending'",
                (sink,),
            ).fetchone()
        )
        return None if row is None or row[0] is None else float(row[0])

    async def counts(self) -> dict[str, int]:
        """Number of events and deliveries per state (for metrics and ``/readyz``)."""

        def operation(c: sqlite3.Connection) -> dict[str, int]:
            found: dict[str, int] = {}
            for state, n in c.execute("SELECT state, COUNT(*) FROM events GROUP BY state"):
                found[f"events_{state}"] = n
            for state, n in c.execute("SELECT state, COUNT(*) FROM deliveries GROUP BY state"):
                found[f"deliveries_{state}"] = n
            return found

        result: dict[str, int] = await self._writer.submit(operation)
        return result

    # -- dead letters ------------------------------------------------------------------------

    async def dead_letters(self, ids: Iterable[int] | None = None) -> list[DeadLetter]:
        """Dead deliveries, oldest first; only ``ids`` when given."""
        wanted = None if ids is None else list(ids)

        def operation(c: sqlite3.Connection) -> list[DeadLetter]:
            query = (
                "SELECT d.id, d.event_id, d.route, d.sink, d.attempts, d.created_at,"
                " d.finished_at, COALESCE(d.last_error, ''), d.message, e.body"
                " FROM deliveries d LEFT JOIN events e ON e.id = d.event_id"
                " WHERE d.state = 'dead'"
            )
            params: list[object] = []
            if wanted is not None:
                query += f" AND d.id IN ({','.join('?' * len(wanted))})"
                params.extend(wanted)
            rows = c.execute(query + " ORDER BY d.finished_at, d.id", params).fetchall()
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
                for r in rows
            ]

        letters: list[DeadLetter] = await self._writer.submit(operation)
        return letters

    async def replay(self, ids: Iterable[int]) -> list[int]:
        """Make dead deliveries pending again, with a fresh age and attempt count."""
        wanted = list(ids)

        def operation(c: sqlite3.Connection) -> list[tuple[int, str]]:
            return _replay_rows(c, wanted, time.time())

        rows: list[tuple[int, str]] = await self._writer.submit(operation)
        self._wake({sink_wake(sink) for _, sink in rows})
        return [i for i, _ in rows]

    async def purge_dead(self, older_than: float = 0.0) -> int:
        """Delete dead deliveries that died more than ``older_than`` seconds ago."""

        def operation(c: sqlite3.Connection) -> int:
            cutoff = time.time() - older_than
            return c.execute(
                "DELETE FROM deliveries WHERE state = 'dead' AND finished_at <= ?", (cutoff,)
            ).rowcount

        purged: int = await self._writer.submit(operation)
        return purged

    async def prune(self, older_than: float) -> int:
        """Forget finished work older than ``older_than`` seconds (and its dedupe keys).

        Events are kept while any of their deliveries is pending or dead.
        """

        def operation(c: sqlite3.Connection) -> int:
            cutoff = time.time() - older_than
            c.execute("DELETE FROM deliveries WHERE state = 'done' AND finished_at < ?", (cutoff,))
            return c.execute(
                "DELETE FROM events WHERE state = 'routed' AND received_at < ?"
                " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.id)",
                (cutoff,),
            ).rowcount

        pruned: int = await self._writer.submit(operation)
        return pruned


def _replay_rows(c: sqlite3.Connection, ids: list[int], now: float) -> list[tuple[int, str]]:
    replayed: list[tuple[int, str]] = []
    for delivery_id in ids:
        row = c.execute(
            "UPDATE deliveries SET state = 'pending', attempts = 0, created_at = ?,"
            " next_attempt_at = ?, finished_at = NULL, lease = 0"
            " WHERE id = ? AND state = 'dead' RETURNING id, sink",
            (now, now, delivery_id),
        ).fetchone()
        if row is not None:
            replayed.append((row[0], row[1]))
    return replayed
