"""The embedded queue: a SQLite file in WAL mode, written through group commit.

Events are committed before the receiver answers 202. Routing workers and sink dispatchers
*claim* work with a lease: claiming pushes ``next_attempt_at`` to the lease's end, so work held
by a process that died (``kill -9``) simply becomes due again when the lease runs out. A
``lease`` token guards completions, so a worker whose lease expired cannot overwrite the outcome
of the worker that took over.

The writer checks before each commit that the path still names the file it opened
(:mod:`notirouter.queue.sqlite.file_identity`), and a queue is never created where one existed
(:mod:`notirouter.queue.sqlite.existence`).
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from notirouter.queue.coalescer import Coalescer
from notirouter.queue.gates import GatedMessage, with_gate_records
from notirouter.queue.records import (
    AttemptNote,
    AttemptOutcome,
    ChangeMark,
    DigestBuilder,
    DueGroup,
    EnqueueResult,
    FlushedMessage,
    NewDelivery,
    NewGroupItem,
    RoutedEvent,
    StoredDelivery,
    StoredEvent,
    StormStep,
    attempt_note,
)
from notirouter.queue.sqlite import changes, groups, storms
from notirouter.queue.sqlite import gates as sqlite_gates
from notirouter.queue.sqlite.existence import check_before_open, marker_path, record_created
from notirouter.queue.sqlite.file_identity import (
    FileIdentity,
    FileLost,
    check_identity,
    report_lost,
)
from notirouter.queue.sqlite.message_refs import IN_ORDER_SQLITE
from notirouter.queue.sqlite.migrations import migrate
from notirouter.queue.sqlite.readiness import read_probe, write_probe
from notirouter.queue.sqlite.schema import SCHEMA
from notirouter.queue.sqlite.writer import GroupCommitWriter, Operation, QueueUnavailable

__all__ = ["QueueUnavailable", "SqliteQueue"]

EVENTS_WAKE = "events"
T = TypeVar("T")


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
        self._writer = GroupCommitWriter(
            self._connect, self._wake, guard=self._check_file, on_lost=self._file_lost
        )
        self._reader: sqlite3.Connection | None = None
        self._reader_lock = threading.Lock()
        self._create = True
        self._init = False
        self._identity: FileIdentity | None = None
        # Delivery outcomes that arrive while one batch is being written share the next one.
        self._finishing: Coalescer[AttemptOutcome, bool] = Coalescer(self._finish_deliveries)
        self._completing: Coalescer[RoutedEvent, tuple[bool, bool]] = Coalescer(
            self._complete_events
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self, *, create: bool = True, init: bool = False) -> None:
        """Start the writer thread; create the file and schema unless ``create`` is false.

        Operator commands open with ``create=False``: a wrong path must say so, not show an
        empty queue. ``serve`` creates the file only where no queue existed, or with ``init``
        (``serve --init``) where one was lost.
        """
        self._create = create
        self._init = init
        self._writer.start(asyncio.get_running_loop())

    async def close(self) -> None:
        """Commit what is queued and close the file."""
        await asyncio.to_thread(self._writer.close)
        with self._reader_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    def _connect(self) -> sqlite3.Connection:
        if not self._create and not self.path.exists():
            raise FileNotFoundError(f"no queue file at {self.path}")
        new = lost = False
        if self._create:
            lost = marker_path(self.path).exists()
            new = check_before_open(self.path, init=self._init)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(
            self.path, isolation_level=None, timeout=self.busy_timeout, check_same_thread=True
        )
        connection.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit survives power loss, not just a crash; group commit keeps it cheap.
        connection.execute(
            f"PRAGMA synchronous={'FULL' if self.synchronous == 'full' else 'NORMAL'}"
        )
        try:
            connection.executescript(SCHEMA)
            # Every file is brought to the latest version, a new one included: no SQLite
            # queue exists without its recorded schema version.
            migrate(connection, str(self.path))
        except BaseException:
            connection.close()
            raise
        self._identity = FileIdentity.of(self.path)
        if self._create:
            record_created(self.path, new=new, replaced_lost=new and lost)
        return connection

    def _check_file(self, connection: sqlite3.Connection) -> None:
        if self._identity is not None:
            check_identity(self.path, self._identity)

    def _file_lost(self, connection: sqlite3.Connection, lost: FileLost) -> None:
        report_lost(connection, self.path, lost)

    async def write(self, operation: Operation, *, wakes: tuple[str, ...] = ()) -> Any:
        """Run ``operation(connection)`` in the next group-committed transaction."""
        return await self._writer.submit(operation, wakes=wakes)

    async def read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """Run a read-only ``query`` on a separate connection, off the event loop.

        In WAL mode readers never block the writer: a long ``dead list`` cannot hold up
        the receiver, as it would inside the writer's ``BEGIN IMMEDIATE``.
        """
        return await asyncio.to_thread(self._read, query)

    def _read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        with self._reader_lock:
            if self._reader is None:
                uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
                self._reader = sqlite3.connect(
                    uri, uri=True, timeout=self.busy_timeout, check_same_thread=False
                )
            try:
                return query(self._reader)
            except sqlite3.Error as exc:
                raise QueueUnavailable(f"cannot read the queue: {exc}") from exc

    def wakeup(self, key: str) -> asyncio.Event:
        """The event set whenever a commit adds work for ``key`` (``events`` or a sink)."""
        return self._wakeups.setdefault(key, asyncio.Event())

    def wake(self, keys: set[str]) -> None:
        """Set the wake-ups for ``keys`` (done by commits; also after changes made here)."""
        self._wake(keys)

    def _wake(self, keys: set[str]) -> None:
        for key in keys:
            self.wakeup(key).set()

    async def readiness(self) -> str | None:
        """``None`` if the queue can store events now (for ``/readyz``), else the reason.

        Normally one transaction that reads nothing; after a failure, a probe that writes
        (a read-only or damaged file still runs ``SELECT 1``).
        """
        if self._writer.lost is not None:
            return self._writer.lost
        probe = write_probe if self._writer.failing is not None else read_probe
        try:
            await self._writer.submit(probe)
        except QueueUnavailable as exc:
            return str(exc)
        return None

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

    async def complete_event(
        self,
        event: StoredEvent,
        deliveries: Iterable[NewDelivery],
        items: Iterable[NewGroupItem] = (),
        routing: str | None = None,
        gated: Sequence[GatedMessage] = (),
        change: ChangeMark | None = None,
    ) -> bool:
        """Record the event's delivery jobs, group items and what routing decided, and mark it
        routed, in one transaction; ``gated`` messages are decided in it (``notify_on``,
        ``throttle``: :mod:`notirouter.queue.gates`), their state written with the jobs; with a
        ``change`` already seen by reconciliation, only mark it routed.

        Events without gates or change are written in batches with the other events routed
        meanwhile.

        Returns ``False`` when the lease was lost (another worker owns the event now).
        """
        if not gated and change is None:
            routed = RoutedEvent(event, tuple(deliveries), tuple(items), routing)
            batched, new_group = await self._completing.submit(routed)
            if batched and new_group:
                self._wake({groups.GROUPS_WAKE})
            return batched
        given_jobs = list(deliveries)
        given_items = list(items)
        created: list[bool] = []
        woken: set[str] = set()

        def operation(c: sqlite3.Connection) -> bool:
            now = time.time()
            jobs, held, record = given_jobs, given_items, routing
            updated = c.execute(
                "UPDATE events SET state = 'routed', last_error = NULL, routing = ?"
                " WHERE id = ? AND lease = ? AND state = 'pending'",
                (record, event.id, event.lease),
            ).rowcount
            if not updated:
                return False
            first = (
                None
                if change is None
                else changes.claim_change(c, change.key, event.id, now, changes.WEBHOOK)
            )
            if change is not None and first == changes.RECONCILE:
                # Already notified by reconciliation: routed, no jobs.
                if change.routing_if_seen is not None:
                    c.execute(
                        "UPDATE events SET routing = ? WHERE id = ?",
                        (change.routing_if_seen, event.id),
                    )
                return True
            if gated:
                outcome = sqlite_gates.decide(c, gated)
                jobs = [*jobs, *outcome.deliveries]
                held = [*held, *outcome.items]
                record = with_gate_records(record, outcome.records)
                c.execute("UPDATE events SET routing = ? WHERE id = ?", (record, event.id))
            c.executemany(
                "INSERT OR IGNORE INTO deliveries (event_id, route, sink, message, created_at,"
                " next_attempt_at) VALUES (?, ?, ?, ?, ?, ?)",
                [(event.id, j.route, j.sink, j.message_json, now, now) for j in jobs],
            )
            created[:] = [groups.add_items(c, event.id, held)]
            woken.clear()
            woken.update(sink_wake(j.sink) for j in jobs)
            return True

        wakes = tuple(sorted({sink_wake(j.sink) for j in given_jobs}))
        done: bool = await self._writer.submit(operation, wakes=wakes)
        if done and any(created):
            self._wake({groups.GROUPS_WAKE})
        if done and gated:
            self._wake(woken)  # sinks the gates let through (not known before the decision)
        return done

    async def _complete_events(self, batch: Sequence[RoutedEvent]) -> list[tuple[bool, bool]]:
        """Mark a batch of events routed in one writer operation: (routed, new group) each."""

        def operation(c: sqlite3.Connection) -> list[tuple[bool, bool]]:
            now = time.time()
            outcomes = []
            for routed in batch:
                event = routed.event
                if not c.execute(
                    "UPDATE events SET state = 'routed', last_error = NULL, routing = ?"
                    " WHERE id = ? AND lease = ? AND state = 'pending'",
                    (routed.routing, event.id, event.lease),
                ).rowcount:
                    outcomes.append((False, False))
                    continue
                c.executemany(
                    "INSERT OR IGNORE INTO deliveries (event_id, route, sink, message,"
                    " created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?)",
                    [(event.id, j.route, j.sink, j.message_json, now, now) for j in routed.jobs],
                )
                outcomes.append((True, groups.add_items(c, event.id, list(routed.items))))
            return outcomes

        wakes = tuple(sorted({sink_wake(j.sink) for routed in batch for j in routed.jobs}))
        done: list[tuple[bool, bool]] = await self._writer.submit(operation, wakes=wakes)
        return done

    async def retry_event(
        self, event: StoredEvent, delay: float, error: str, *, dead: bool
    ) -> None:
        """Routing failed: try again after ``delay`` seconds, or give up (``dead``).

        A failed event keeps the time it gave up in ``next_attempt_at`` (``dead purge
        --older-than`` measures from it).
        """

        def operation(c: sqlite3.Connection) -> None:
            c.execute(
                "UPDATE events SET state = ?, next_attempt_at = ?, last_error = ?, lease = 0"
                " WHERE id = ? AND lease = ?",
                (
                    "failed" if dead else "pending",
                    time.time() + (0.0 if dead else delay),
                    error,
                    event.id,
                    event.lease,
                ),
            )

        await self._writer.submit(operation, wakes=() if dead else (EVENTS_WAKE,))

    async def renew_event_lease(self, event: StoredEvent, lease_seconds: float) -> bool:
        """Push the lease of an event still being routed (``False``: no longer ours)."""
        return await self._renew("events", event.id, event.lease, lease_seconds)

    async def renew_delivery_lease(self, delivery: StoredDelivery, lease_seconds: float) -> bool:
        """Push the lease of a delivery still being attempted (``False``: no longer ours)."""
        return await self._renew("deliveries", delivery.id, delivery.lease, lease_seconds)

    async def _renew(self, table: str, key: object, lease: int, lease_seconds: float) -> bool:
        def operation(c: sqlite3.Connection) -> bool:
            # The lease's end as the writer runs it: a renewal late in a busy queue still
            # gives the whole lease from now.
            return bool(
                c.execute(
                    f"UPDATE {table} SET next_attempt_at = ?"  # noqa: S608 (a fixed name)
                    " WHERE id = ? AND lease = ? AND state = 'pending'",
                    (time.time() + lease_seconds, key, lease),
                ).rowcount
            )

        renewed: bool = await self._writer.submit(operation)
        return renewed

    async def next_event_due(self) -> float | None:
        """When the earliest pending event becomes due (``None``: no pending event)."""
        row = await self.read(
            lambda c: c.execute(
                "SELECT MIN(next_attempt_at) FROM events WHERE state = 'pending'"
            ).fetchone()
        )
        return None if row is None or row[0] is None else float(row[0])

    # -- groups ------------------------------------------------------------------------------

    async def flush_groups(self, limit: int, build: Callable[[DueGroup], FlushedMessage]) -> int:
        """Flush up to ``limit`` due groups (see :class:`~notirouter.queue.protocol.GroupStore`)."""
        return await groups.flush_groups(self, limit, build)

    async def next_group_due(self) -> float | None:
        """When the earliest group falls due (``None``: no group)."""
        return await groups.next_group_due(self)

    # -- storm mode --------------------------------------------------------------------------

    async def storm_step(
        self, sink: str, *, rate: float, after: float, build: DigestBuilder
    ) -> StormStep:
        """Check, start, fold or end ``sink``'s storm mode (see ``StormStore``)."""
        return await storms.storm_step(self, sink, rate, after, build)

    # -- deliveries --------------------------------------------------------------------------

    async def claim_deliveries(
        self, sink: str, limit: int, lease_seconds: float, *, in_order: bool = False
    ) -> list[StoredDelivery]:
        """Take up to ``limit`` due deliveries for ``sink`` under a lease.

        ``in_order``: only the oldest unfinished delivery of each thread key (see the protocol).
        """
        token = secrets.randbits(62)
        ordered = IN_ORDER_SQLITE if in_order else ""

        def operation(c: sqlite3.Connection) -> list[StoredDelivery]:
            now = time.time()
            rows = c.execute(
                # ``ordered`` is one of two constants, never data.
                "UPDATE deliveries SET attempts = attempts + 1, lease = ?, next_attempt_at = ?"  # noqa: S608
                " WHERE id IN (SELECT id FROM deliveries d WHERE sink = ? AND state = 'pending'"
                f" AND next_attempt_at <= ?{ordered} ORDER BY next_attempt_at LIMIT ?)"
                " RETURNING id, event_id, route, sink, message, attempts, created_at",
                (token, now + lease_seconds, sink, now, limit),
            ).fetchall()
            return [StoredDelivery(r[0], r[1], r[2], r[3], r[4], r[5], r[6], token) for r in rows]

        claimed: list[StoredDelivery] = await self._writer.submit(operation)
        return claimed

    async def finish_delivery(
        self,
        delivery: StoredDelivery,
        *,
        state: str,
        error: str | None,
        retry_in: float = 0.0,
        attempt: AttemptNote | None = None,
    ) -> bool:
        """Record an attempt: ``done``, ``dead``, or ``pending`` again in ``retry_in`` seconds.

        The attempt joins the delivery's history in the same transaction, as one operation
        with every other outcome that came in while the previous ones were being written.
        """
        now = time.time()
        note = attempt_note(state, error, attempt)
        outcome = AttemptOutcome(delivery, state, error, now + retry_in, now, note)
        done: bool = await self._finishing.submit(outcome)
        return done

    async def _finish_deliveries(self, outcomes: Sequence[AttemptOutcome]) -> list[bool]:
        """Record a batch of outcomes in one writer operation; ``False`` where the lease was
        lost (the attempt's new owner records its own)."""

        def operation(c: sqlite3.Connection) -> list[bool]:
            recorded = []
            for o in outcomes:
                pending = o.state == "pending"
                finished = c.execute(
                    # The lease ends negated: no late renewal matches it (see RENEW_DELIVERY).
                    "UPDATE deliveries SET state = ?, last_error = ?, next_attempt_at = ?,"
                    " finished_at = ?, lease = -lease"
                    " WHERE id = ? AND lease = ? AND state = 'pending'",
                    (
                        o.state,
                        o.error,
                        o.next_at,
                        None if pending else o.at,
                        o.delivery.id,
                        o.delivery.lease,
                    ),
                ).rowcount
                if finished:
                    c.execute(
                        "INSERT INTO delivery_attempts (delivery_id, sink, attempt, at, outcome,"
                        " status, detail, next_attempt_at, paused_until)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            o.delivery.id,
                            o.delivery.sink,
                            o.delivery.attempts,
                            o.at,
                            o.note.outcome,
                            o.note.status,
                            o.note.detail,
                            o.next_at if pending else None,
                            o.note.paused_until,
                        ),
                    )
                recorded.append(bool(finished))
            return recorded

        # A retry changes when its sink next has work: wake its dispatcher to re-plan its sleep.
        wakes = tuple(
            sorted({sink_wake(o.delivery.sink) for o in outcomes if o.state == "pending"})
        )
        done: list[bool] = await self._writer.submit(operation, wakes=wakes)
        return done

    async def next_delivery_due(self, sink: str) -> float | None:
        """When the earliest pending delivery for ``sink`` becomes due."""
        row = await self.read(
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

        return await self.read(operation)
