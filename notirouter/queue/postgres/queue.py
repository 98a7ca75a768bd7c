"""The PostgreSQL queue: events and delivery jobs in one database shared by every process.

Same model as SQLite (see :mod:`notirouter.queue.protocol`), built for several processes:
claims take rows with ``FOR UPDATE SKIP LOCKED`` so concurrent workers never wait for or take
each other's rows; each commit that adds work notifies every process (``LISTEN/NOTIFY``); a
sink's rate limit and pause are rows in the database. Each operation is one transaction on a
pooled connection; a lost connection surfaces as :class:`QueueUnavailable` (the receiver
answers 503, the loops pause and claim again) and the pool reconnects on the next use.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Iterable, Sequence

import asyncpg

from notirouter.config.models import QueueConfig
from notirouter.queue.coalescer import Coalescer
from notirouter.queue.gates import GatedMessage, StateKey, Values, Window, with_gate_records
from notirouter.queue.postgres import changes, dead_letters, groups, storms
from notirouter.queue.postgres import gates as pg_gates
from notirouter.queue.postgres import statements as sql
from notirouter.queue.postgres.connection import (
    DRIVER_ERRORS,
    create_pool,
    refused_items,
    shown_url,
    unavailable,
)
from notirouter.queue.postgres.gate import SharedGate
from notirouter.queue.postgres.inspection import PostgresInspection
from notirouter.queue.postgres.interactions import PostgresInteractions
from notirouter.queue.postgres.listener import Listener
from notirouter.queue.postgres.message_refs import CLAIM_DELIVERIES_IN_ORDER, PostgresMessageRefs
from notirouter.queue.postgres.process_states import PostgresProcessStates
from notirouter.queue.postgres.schema import current_version, migrate
from notirouter.queue.postgres.silences import PostgresSilences
from notirouter.queue.protocol import (
    EVENTS_WAKE,
    GROUPS_WAKE,
    ChangeLedger,
    DeadLetterStore,
    Inspection,
    InteractionStore,
    MessageRefs,
    ProcessStates,
    SilenceStore,
    SinkGate,
    sink_wake,
)
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
    StoredDelivery,
    StoredEvent,
    StormStep,
    attempt_note,
)
from notirouter.queue.sqlite.writer import QueueUnavailable

ENQUEUE_TRIES = 5
READY_TIMEOUT = 2.0


class PostgresQueue:
    """The scale-out backend (``queue: {backend: postgres, url: ...}``)."""

    backend = "postgres"

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        connect_timeout: float = 5.0,
        dedupe_window: float = 86_400.0,
    ) -> None:
        self.url = url
        self.where = shown_url(url)
        self.pool_size = pool_size
        self.connect_timeout = connect_timeout
        self.dedupe_window = dedupe_window
        self._wakeups: dict[str, asyncio.Event] = {}
        self._pool: asyncpg.Pool | None = None
        self._listener: Listener | None = None
        # Delivery outcomes that arrive while one batch is being written share the next one.
        self._finishing: Coalescer[AttemptOutcome, bool] = Coalescer(self._finish_deliveries)

    @classmethod
    def from_settings(cls, settings: QueueConfig) -> PostgresQueue:
        """The queue the ``queue:`` section describes."""
        assert settings.url is not None
        return cls(
            settings.url.get_secret_value(),
            pool_size=settings.pool_size,
            connect_timeout=settings.connect_timeout,
            dedupe_window=settings.dedupe_window,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def pool(self) -> asyncpg.Pool:
        """The connection pool (once open)."""
        if self._pool is None:
            raise QueueUnavailable("the queue is closed")
        return self._pool

    async def open(self, *, create: bool = True, init: bool = False) -> None:
        """Connect, migrate the schema forward, and start listening for wake-ups.

        ``init`` changes nothing here: a database is not lost by deleting a file, and a
        missing schema is created only with ``create``.
        """
        # One connection is the listener's: the rest of pool_size is the pool's.
        self._pool = await create_pool(self.url, self.pool_size - 1, self.connect_timeout)
        try:
            with unavailable(f"open the queue at {self.where}"):
                async with self._pool.acquire() as connection:
                    await migrate(connection, self.where, create=create)
                self._listener = Listener(
                    self.url,
                    self.connect_timeout,
                    self._wake,
                    lambda: self._wake(set(self._wakeups)),
                )
                await self._listener.start()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop listening and close every connection."""
        if self._listener is not None:
            await self._listener.stop()
            self._listener = None
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), 5)
            except DRIVER_ERRORS:
                pool.terminate()

    async def schema_version(self) -> int:
        """The version of the queue schema in the database."""
        with unavailable("read the schema version"):
            async with self.pool.acquire() as connection:
                return await current_version(connection)

    def wakeup(self, key: str) -> asyncio.Event:
        """The event set whenever a commit, in any process, adds work for ``key``."""
        return self._wakeups.setdefault(key, asyncio.Event())

    def wake(self, keys: set[str]) -> None:
        """Set the wake-ups for ``keys`` in this process."""
        self._wake(keys)

    def _wake(self, keys: set[str]) -> None:
        for key in keys:
            self.wakeup(key).set()

    async def readiness(self) -> str | None:
        """``None`` if the database answers now, else why not."""
        try:
            with unavailable("reach the database"):
                await self.pool.fetchval("SELECT 1", timeout=READY_TIMEOUT)
        except QueueUnavailable as exc:
            return str(exc)
        return None

    # -- events ------------------------------------------------------------------------------

    async def enqueue(
        self, *, hook: str, source: str, dedupe_key: str, body: bytes
    ) -> EnqueueResult:
        """Store an event, or recognise it as a duplicate within the dedupe window.

        Two receivers given the same event at once both answer 202 with one id: the unique
        dedupe key makes the second insert wait for the first and then see its row.
        """
        with unavailable("store the event"):
            for _ in range(ENQUEUE_TRIES):
                result = await self._enqueue_once(hook, source, dedupe_key, body)
                if result is not None:
                    self._wake({EVENTS_WAKE})
                    return result
        raise QueueUnavailable("PostgreSQL: cannot store the event: its dedupe key kept changing")

    async def _enqueue_once(
        self, hook: str, source: str, dedupe_key: str, body: bytes
    ) -> EnqueueResult | None:
        event_id = secrets.token_hex(16)
        now = time.time()
        args = (event_id, dedupe_key, hook, source, now, body)
        # The common case is one round trip: a new key, inserted and notified in one statement.
        if await self.pool.fetchval(sql.INSERT_NEW_EVENT, *args):
            return EnqueueResult(event_id, False)
        # A duplicate within the window (a sender's retry) needs no lock: one more round trip.
        seen = await self.pool.fetchrow(
            "SELECT id, received_at FROM events WHERE dedupe_key = $1", dedupe_key
        )
        if seen is not None and seen["received_at"] >= now - self.dedupe_window:
            return EnqueueResult(seen["id"], True)
        async with self.pool.acquire() as connection, connection.transaction():
            row = await connection.fetchrow(
                "SELECT id, received_at FROM events WHERE dedupe_key = $1 FOR UPDATE", dedupe_key
            )
            if row is None:
                return None  # retired or pruned meanwhile: try the insert again
            if row["received_at"] >= now - self.dedupe_window:
                return EnqueueResult(row["id"], True)
            # Outside the window the same key is a new event: retire the old key.
            await connection.execute(
                "UPDATE events SET dedupe_key = dedupe_key || ':' || id WHERE id = $1", row["id"]
            )
            await connection.fetchval(sql.INSERT_EVENT, *args)
            return EnqueueResult(event_id, False)

    async def claim_events(self, limit: int, lease_seconds: float) -> list[StoredEvent]:
        """Take up to ``limit`` due events under a lease, skipping rows others are taking."""
        token = secrets.randbits(62)
        now = time.time()
        with unavailable("claim events"):
            rows = await self.pool.fetch(
                sql.CLAIM_EVENTS,
                token,
                now + lease_seconds,
                now,
                limit,
            )
        return [StoredEvent(r[0], r[1], r[2], bytes(r[3]), r[4], r[5], token) for r in rows]

    async def complete_event(
        self,
        event: StoredEvent,
        deliveries: Iterable[NewDelivery],
        items: Iterable[NewGroupItem] = (),
        routing: str | None = None,
        gated: Sequence[GatedMessage] = (),
        change: ChangeMark | None = None,
    ) -> bool:
        """Write the event's jobs, group items and what routing decided, and mark it routed,
        in one transaction (``False``: lease lost); ``gated`` messages are decided in it, on
        their locked state rows (:mod:`notirouter.queue.postgres.gates`). Without group items,
        gates or change it is one statement.

        With a ``change`` already seen (notified by reconciliation), the event is only marked
        routed: claiming the change and writing the jobs are one transaction, so of two
        processes routing the same change, one writes jobs.
        """
        jobs = list(deliveries)
        held = list(items)

        def arguments() -> tuple[object, ...]:
            return (
                event.id,
                event.lease,
                [j.route for j in jobs],
                [j.sink for j in jobs],
                [j.message_json for j in jobs],
                time.time(),
                sorted({sink_wake(j.sink) for j in jobs}),
                routing,
            )

        with unavailable("record the routed event"):
            if not held and not gated and change is None:
                routed = await self.pool.fetchval(sql.COMPLETE_EVENT, *arguments())
            else:
                async with self.pool.acquire() as connection, connection.transaction():
                    owned = sql.LOCK_OWN_EVENT
                    locks = bool(gated) or change is not None
                    routed = not locks or await connection.fetchval(owned, event.id, event.lease)
                    if routed and change is not None:
                        first = await changes.claim_change(
                            connection, change.key, event.id, time.time(), changes.WEBHOOK
                        )
                        if first == changes.RECONCILE:
                            # Already notified by reconciliation: routed, no jobs, no gates.
                            jobs, held, gated = [], [], ()
                            routing = change.routing_if_seen or routing
                    if routed and gated:
                        outcome = await pg_gates.decide(connection, gated)
                        jobs.extend(outcome.deliveries)
                        held.extend(outcome.items)
                        routing = with_gate_records(routing, outcome.records)
                    if routed:
                        routed = await connection.fetchval(sql.COMPLETE_EVENT, *arguments())
                    if routed and held:
                        await groups.add_items(connection, event.id, held)
        if routed:
            wakes = {sink_wake(j.sink) for j in jobs}
            self._wake(wakes | ({GROUPS_WAKE} if held else set()))
        return bool(routed)

    async def retry_event(
        self, event: StoredEvent, delay: float, error: str, *, dead: bool
    ) -> None:
        """Routing failed: try again after ``delay`` seconds, or give up (``dead``)."""
        with unavailable("reschedule the event"):
            await self.pool.execute(
                "UPDATE events SET state = $1, next_attempt_at = $2, last_error = $3, lease = 0"
                " WHERE id = $4 AND lease = $5",
                "failed" if dead else "pending",
                time.time() + (0.0 if dead else delay),
                error,
                event.id,
                event.lease,
            )
        if not dead:
            self._wake({EVENTS_WAKE})

    async def renew_event_lease(self, event: StoredEvent, lease_seconds: float) -> bool:
        """Push the lease of an event still being routed (``False``: no longer ours)."""
        with unavailable("renew an event's lease"):
            status = await self.pool.execute(
                sql.RENEW_EVENT, event.id, event.lease, time.time() + lease_seconds
            )
        return dead_letters.affected(status) == 1

    async def renew_delivery_lease(self, delivery: StoredDelivery, lease_seconds: float) -> bool:
        """Push the lease of a delivery still being attempted (``False``: no longer ours)."""
        with unavailable("renew a delivery's lease"):
            status = await self.pool.execute(
                sql.RENEW_DELIVERY, delivery.id, delivery.lease, time.time() + lease_seconds
            )
        return dead_letters.affected(status) == 1

    async def next_event_due(self) -> float | None:
        """When the earliest pending event becomes due (``None``: none pending)."""
        with unavailable("read the next due event"):
            due = await self.pool.fetchval(
                "SELECT MIN(next_attempt_at) FROM events WHERE state = 'pending'"
            )
        return None if due is None else float(due)

    # -- groups ------------------------------------------------------------------------------

    async def flush_groups(self, limit: int, build: Callable[[DueGroup], FlushedMessage]) -> int:
        """Flush up to ``limit`` due groups, each by one process only (``SKIP LOCKED``)."""
        flushed, woken = await groups.flush_groups(self.pool, limit, build)
        self._wake(woken)
        return flushed

    async def next_group_due(self) -> float | None:
        """When the earliest group falls due (``None``: no group)."""
        return await groups.next_group_due(self.pool)

    # -- gates -------------------------------------------------------------------------------

    async def gate_state(
        self, gated: Sequence[GatedMessage]
    ) -> tuple[dict[StateKey, Values | None], dict[StateKey, Window | None]]:
        """The stored ``notify_on`` values and throttle windows of ``gated``'s keys."""
        return await pg_gates.read_state(self.pool, gated)

    async def prune_gates(self) -> int:
        """Forget expired ``notify_on`` values and ended windows."""
        return await pg_gates.prune(self.pool)

    # -- storm mode --------------------------------------------------------------------------

    async def storm_step(
        self, sink: str, *, rate: float, after: float, build: DigestBuilder
    ) -> StormStep:
        """Check, start, fold or end ``sink``'s storm mode, one process at a time per sink."""
        step = await storms.storm_step(self.pool, sink, rate, after, build)
        if step.digests:
            self._wake({sink_wake(sink)})
        return step

    # -- deliveries --------------------------------------------------------------------------

    async def claim_deliveries(
        self, sink: str, limit: int, lease_seconds: float, *, in_order: bool = False
    ) -> list[StoredDelivery]:
        """Take up to ``limit`` due deliveries for ``sink`` under a lease, unless it is paused.

        The pause is checked in the claim itself: a ``Retry-After`` recorded by any process
        holds every other one from its next claim on, at no extra round trip. ``in_order``:
        only the oldest unfinished delivery of each thread key (see the protocol).
        """
        token = secrets.randbits(62)
        now = time.time()
        with unavailable("claim deliveries"):
            rows = await self.pool.fetch(
                CLAIM_DELIVERIES_IN_ORDER if in_order else sql.CLAIM_DELIVERIES,
                token,
                now + lease_seconds,
                sink,
                now,
                limit,
            )
        return [StoredDelivery(r[0], r[1], r[2], r[3], r[4], r[5], r[6], token) for r in rows]

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

        The attempt joins the delivery's history in the same statement, which also records
        every other outcome that came in while the previous one was being written.
        """
        now = time.time()
        outcome = AttemptOutcome(
            delivery, state, error, now + retry_in, now, attempt_note(state, error, attempt)
        )
        done = await self._finishing.submit(outcome)
        if done and state == "pending":
            # A retry changes when this sink next has work: let its dispatcher re-plan its sleep.
            self._wake({sink_wake(delivery.sink)})
        return done

    async def _finish_deliveries(self, outcomes: Sequence[AttemptOutcome]) -> list[bool]:
        """Record a batch of outcomes in one round trip; ``False`` where the lease was lost."""
        with unavailable("record the delivery attempt"), refused_items(len(outcomes)):
            rows = await self.pool.fetch(
                sql.FINISH_DELIVERIES,
                [o.delivery.id for o in outcomes],
                [o.delivery.lease for o in outcomes],
                [o.state for o in outcomes],
                [o.error for o in outcomes],
                [o.next_at for o in outcomes],
                [None if o.state == "pending" else o.at for o in outcomes],
                [o.delivery.sink for o in outcomes],
                [o.delivery.attempts for o in outcomes],
                [o.note.outcome for o in outcomes],
                [o.note.status for o in outcomes],
                [o.note.detail for o in outcomes],
                [o.note.paused_until for o in outcomes],
                [o.at for o in outcomes],
            )
        recorded = {row[0] for row in rows}
        return [o.delivery.id in recorded for o in outcomes]

    async def next_delivery_due(self, sink: str) -> float | None:
        """When the earliest pending delivery for ``sink`` becomes due (or its pause ends)."""
        with unavailable("read the next due delivery"):
            due = await self.pool.fetchval(
                sql.NEXT_DELIVERY_DUE,
                sink,
            )
        return None if due is None else float(due)

    async def counts(self) -> dict[str, int]:
        """Number of events and deliveries per state."""
        with unavailable("count the queue"):
            rows = await self.pool.fetch(
                "SELECT 'events_' || state, COUNT(*) FROM events GROUP BY state"
                " UNION ALL SELECT 'deliveries_' || state, COUNT(*) FROM deliveries GROUP BY state"
            )
        return {r[0]: int(r[1]) for r in rows}

    # -- operators and housekeeping ----------------------------------------------------------

    def dead_letters(self) -> DeadLetterStore:
        """The dead letters in this database."""
        return dead_letters.PostgresDeadLetters(self.pool)

    def message_refs(self) -> MessageRefs:
        """The conversations' references, shared with every process on this database."""
        return PostgresMessageRefs(self.pool)

    def silences(self) -> SilenceStore:
        """The silences, shared with every process on this database."""
        return PostgresSilences(self.pool)

    def process_states(self) -> ProcessStates:
        """Every serving process's report of its in-memory state, on this database."""
        return PostgresProcessStates(self)

    def interactions(self) -> InteractionStore:
        """The chat actions, shared with every process on this database."""
        return PostgresInteractions(self.pool)

    def changes(self) -> ChangeLedger:
        """Reconciliation watermarks, leases and changes seen, shared by every process."""
        return changes.PostgresChanges(self.pool)

    def sink_gate(self, sink: str, rate: float | None, burst: int) -> SinkGate:
        """The sink's bucket and pause, shared with every process on this database."""
        return SharedGate(self.pool, sink, rate, burst)

    def inspection(self) -> Inspection:
        """Read-only operator queries on this database (``status``, ``trace``)."""
        return PostgresInspection(self.pool)

    async def bury_orphans(self, sinks: Iterable[str]) -> dict[str, int]:
        """Dead-letter pending deliveries of sinks no longer configured."""
        return await dead_letters.bury_orphans(self.pool, sinks)

    async def prune(self, older_than: float) -> int:
        """Forget finished work older than ``older_than`` seconds."""
        return await dead_letters.prune(self.pool, older_than)
