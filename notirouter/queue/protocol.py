"""What every queue backend implements (SQLite in one process, PostgreSQL for several).

The stages depend on these protocols, never on a backend: the receiver needs an
:class:`IngestQueue`, routing workers a :class:`RoutingQueue`, sink dispatchers a
:class:`DeliveryQueue`, and the runtime and the operator commands the whole :class:`Queue`.
Each protocol names only what its stage uses, so a stage can be tested against either backend
and a later backend has a short, checked list of what to provide.

Model, on every backend: events are committed before the receiver answers 202; work is
*claimed* under a lease (``next_attempt_at`` pushed to the lease's end, so work held by a
process that died simply becomes due again); a lease token guards every completion; routing
writes an event's delivery jobs in the transaction that marks it routed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from notirouter.queue.gates import GatedMessage, StateKey, Values, Window
from notirouter.queue.inspection_records import EventStory, ProcessReport, QueueSnapshot
from notirouter.queue.records import (
    AttemptNote,
    ChangeMark,
    DeadLetter,
    DigestBuilder,
    DueGroup,
    EnqueueResult,
    FailedEvent,
    FlushedMessage,
    NewChange,
    NewDelivery,
    NewGroupItem,
    StoredDelivery,
    StoredEvent,
    StoredInteraction,
    StoredSilence,
    StormStep,
)
from notirouter.queue.sqlite.writer import QueueUnavailable

__all__ = [
    "EVENTS_WAKE",
    "GROUPS_WAKE",
    "INTERACTIONS_WAKE",
    "ChangeLedger",
    "DeadLetterStore",
    "DeliveryQueue",
    "GateStates",
    "GroupStore",
    "IngestQueue",
    "Inspection",
    "InteractionStore",
    "MessageRefs",
    "ProcessStates",
    "Queue",
    "QueueUnavailable",
    "RoutingQueue",
    "SilenceStore",
    "SinkGate",
    "StormStore",
    "sink_wake",
]

EVENTS_WAKE = "events"
GROUPS_WAKE = "groups"
INTERACTIONS_WAKE = "interactions"


def sink_wake(sink: str) -> str:
    """The wake-up key for a sink's dispatcher (``EVENTS_WAKE`` is the routers' key)."""
    return "sink:" + sink


class IngestQueue(Protocol):
    """What the receiver needs: store an event durably, and say whether it can."""

    async def enqueue(
        self, *, hook: str, source: str, dedupe_key: str, body: bytes
    ) -> EnqueueResult:
        """Store an event durably, or recognise it as a duplicate within the dedupe window.

        Raises :class:`QueueUnavailable` when the event could not be stored.
        """
        ...

    async def readiness(self) -> str | None:
        """``None`` when the queue can commit now, else why not (for ``/readyz``)."""
        ...

    async def counts(self) -> dict[str, int]:
        """Number of events and deliveries per state (``events_pending``, ...)."""
        ...


class Wakeups(Protocol):
    """Wake-ups a commit sets for the loops it brought work (in this process or, on a shared
    backend, in every process)."""

    def wakeup(self, key: str) -> asyncio.Event:
        """The event set whenever a commit adds work for ``key`` (``events`` or a sink)."""
        ...


class RoutingQueue(Wakeups, Protocol):
    """What a routing worker needs."""

    async def claim_events(self, limit: int, lease_seconds: float) -> list[StoredEvent]:
        """Take up to ``limit`` due events under a lease."""
        ...

    async def complete_event(
        self,
        event: StoredEvent,
        deliveries: Iterable[NewDelivery],
        items: Iterable[NewGroupItem] = (),
        routing: str | None = None,
        gated: Sequence[GatedMessage] = (),
        change: ChangeMark | None = None,
    ) -> bool:
        """Record the event's jobs and group items and mark it routed in one transaction.

        ``False``: the lease was lost. A new group is created with its first item, due
        ``wait`` seconds later (and wakes :data:`GROUPS_WAKE`). ``routing`` (JSON) is what
        routing decided, kept with the event for ``trace``. ``gated`` messages (a route's
        ``notify_on``, ``throttle``) are decided in the same transaction on the state the
        backend keeps, which is written with them, and their decisions join ``routing``.
        With a ``change``, its key is claimed in the same transaction; if reconciliation
        claimed it before, the event is marked routed without jobs (``change.routing_if_seen``
        as its routing record): the change was notified already. Two webhook events of one
        key are both notified (Sekoia.io sent both).
        """
        ...

    async def retry_event(
        self, event: StoredEvent, delay: float, error: str, *, dead: bool
    ) -> None:
        """Routing failed: try again after ``delay`` seconds, or give up (``dead``)."""
        ...

    async def renew_event_lease(self, event: StoredEvent, lease_seconds: float) -> bool:
        """Push the lease of an event still being routed to ``lease_seconds`` from now.

        ``False``: the lease is no longer this worker's (expired and claimed again, or the event
        was completed or rescheduled, which ends the lease).
        """
        ...

    async def next_event_due(self) -> float | None:
        """When the earliest pending event becomes due (``None``: none pending)."""
        ...


class DeliveryQueue(Wakeups, Protocol):
    """What a sink dispatcher needs."""

    async def claim_deliveries(
        self, sink: str, limit: int, lease_seconds: float, *, in_order: bool = False
    ) -> list[StoredDelivery]:
        """Take up to ``limit`` due deliveries for ``sink`` under a lease.

        ``in_order`` (a sink that keeps conversations): of the unfinished deliveries with one
        ``thread_key``, only the oldest may be claimed, so deliveries for one (sink, thread
        key) run one at a time, in the order they were routed, across every process.
        """
        ...

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

        The attempt joins the delivery's history in the same transaction (``attempt``: what it
        found; by default the outcome ``state`` implies and ``error`` as its detail).
        """
        ...

    async def renew_delivery_lease(self, delivery: StoredDelivery, lease_seconds: float) -> bool:
        """Push the lease of a delivery still being attempted to ``lease_seconds`` from now.

        ``False``: the lease is no longer this worker's (expired and claimed again, or the
        attempt was recorded, which ends the lease).
        """
        ...

    async def next_delivery_due(self, sink: str) -> float | None:
        """When the earliest pending delivery for ``sink`` becomes due."""
        ...


class GroupStore(Wakeups, Protocol):
    """What the group flusher needs: due groups, emptied into delivery jobs atomically."""

    async def flush_groups(self, limit: int, build: Callable[[DueGroup], FlushedMessage]) -> int:
        """Flush up to ``limit`` due groups; return how many were due.

        Each due group is taken so that no other process flushes it too. A group holding
        items is emptied, in the same transaction, into one delivery per sink of the message
        ``build`` makes of it, and is due again ``interval`` later; a group found empty
        (nothing arrived for a whole interval) is forgotten, so its next item starts anew.
        """
        ...

    async def next_group_due(self) -> float | None:
        """When the earliest group falls due (``None``: no group)."""
        ...


class GateStates(Protocol):
    """The stored ``notify_on`` values and throttle windows, read-only (``route`` dry run)."""

    async def gate_state(
        self, gated: Sequence[GatedMessage]
    ) -> tuple[dict[StateKey, Values | None], dict[StateKey, Window | None]]:
        """The state the keys of ``gated`` have now (``None``: nothing stored or expired)."""
        ...

    async def prune_gates(self) -> int:
        """Forget expired ``notify_on`` values and ended windows; the keys forgotten."""
        ...


class StormStore(Protocol):
    """Storm mode of rate-limited sinks (README "Storm mode"), shared by every process."""

    async def storm_step(
        self, sink: str, *, rate: float, after: float, build: DigestBuilder
    ) -> StormStep:
        """Check ``sink``'s backlog; start, continue or end its storm mode; fold if on.

        Storm mode starts when the pending backlog would take longer than ``after`` seconds
        to drain at ``rate`` per second, and ends once nothing is pending for the sink and
        nothing was folded for ``after`` seconds (see ``records.caught_up``). While
        it is on, each route's due deliveries (two or more, digests excepted) are folded into
        one digest delivery ``build`` makes: in one transaction the digest is created and each
        folded delivery is marked ``folded`` into it, so nothing is lost or sent twice.
        """
        ...


class SinkGate(Protocol):
    """A sink's rate limit and ``Retry-After`` pause, shared by every dispatcher of the sink.

    In one process that is the process's own bucket; on a shared backend the bucket is in the
    database, so three workers on a sink limited to 5/s send 5/s together, not 15.
    """

    async def take(self, up_to: int) -> list[float]:
        """Wait out a pause, then take up to ``up_to`` turns for one claim (at least one).

        Each turn is the delay, in seconds from now, before its job may be sent: ``0`` for a
        token in the bucket, a few milliseconds for one the refill brings within
        :data:`~notirouter.delivery.ratelimit.TOKEN_HORIZON`. Without a rate limit, ``up_to``
        turns of ``0``.
        """
        ...

    async def give_back(self, count: int = 1) -> None:
        """Return the tokens of turns a claim found no work for."""
        ...

    async def pause(self, until: float) -> None:
        """Hold the sink until ``until`` (epoch seconds) as its service asked."""
        ...


class MessageRefs(Protocol):
    """The service's id of the first message of each conversation, per (sink, thread key).

    Shared by every process on the backend. A reference is forgotten ``max_age`` seconds after
    it was last used (and pruned by housekeeping).
    """

    async def get(self, sink: str, thread_key: str, max_age: float) -> str | None:
        """The reference, if one was stored or used within ``max_age`` seconds."""
        ...

    async def put(self, sink: str, thread_key: str, reference: str) -> None:
        """Store (or replace) the reference and mark it used now."""
        ...

    async def prune(self, older_than: float) -> int:
        """Forget references not used for ``older_than`` seconds; return how many."""
        ...


class SilenceStore(Protocol):
    """Silences (README "Silences"), shared by every process on the backend.

    Expired silences are kept (``listing(include_expired=True)``) until pruned with retention.
    """

    async def add(
        self,
        matchers: tuple[tuple[str, str, str], ...],
        *,
        ends_at: float,
        comment: str,
        author: str,
    ) -> StoredSilence:
        """Store a new silence, active from now until ``ends_at``."""
        ...

    async def listing(self, *, include_expired: bool = False) -> list[StoredSilence]:
        """Active silences (and expired ones on request), oldest first."""
        ...

    async def expire(self, silence_id: str) -> StoredSilence | None:
        """End a silence now (one already over stays as it was); ``None``: no such silence."""
        ...

    async def prune(self, older_than: float) -> int:
        """Forget silences that ended over ``older_than`` seconds ago; return how many."""
        ...


class ProcessStates(Protocol):
    """Each serving process's latest report of what it holds in memory, keyed by process id.

    A process rewrites its own report every ``server.status_interval`` and withdraws it when it
    stops; ``status`` reads every report, from any host that reaches the queue.
    """

    async def publish(self, report: ProcessReport) -> None:
        """Store (or replace) ``report``; reports expired for over a day are deleted."""
        ...

    async def withdraw(self, process_id: str) -> None:
        """Delete the report of ``process_id`` (a process that stops cleanly)."""
        ...

    async def reports(self) -> list[ProcessReport]:
        """Every stored report, oldest process first (live or not: see ``expires_at``)."""
        ...


class InteractionStore(Protocol):
    """Chat actions (buttons clicked) as durable jobs, and the marks that refuse replays.

    A click is stored before the endpoint answers, claimed under a lease by one worker of any
    process, retried while its write-back fails transiently, and kept when finished with what
    came of it (who, what, when, the answer) until ``prune``.
    """

    async def enqueue(self, sink: str, payload: str, *, mark: str | None, until: float) -> bool:
        """Store a click; ``mark`` (a request signature) is remembered until ``until``.

        ``False``: ``mark`` was already remembered (a replay), and nothing was stored. The
        mark and the job are written in one transaction.
        """
        ...

    async def toggle_mark(self, mark: str, until: float) -> bool:
        """A two-step confirmation: ``True`` when ``mark`` was set and unexpired (it is then
        cleared), else set it until ``until`` and return ``False``."""
        ...

    async def claim(self, limit: int, lease_seconds: float) -> list[StoredInteraction]:
        """Take up to ``limit`` due clicks under a lease."""
        ...

    async def finish(
        self, item: StoredInteraction, *, state: str, result: str, retry_in: float = 0.0
    ) -> bool:
        """Record an attempt: ``done``, ``failed``, or ``pending`` again in ``retry_in`` s.

        ``result`` (JSON) is what came of it. ``False``: the lease was lost.
        """
        ...

    async def next_due(self) -> float | None:
        """When the earliest pending click becomes due (``None``: none)."""
        ...

    async def results(self, sink: str | None = None) -> list[tuple[int, str, str, str]]:
        """(id, sink, state, result) of every click, oldest first (for operators and tests)."""
        ...

    async def prune(self, older_than: float) -> int:
        """Forget finished clicks older than ``older_than`` s and expired marks."""
        ...


class ChangeLedger(Protocol):
    """Reconciliation state: per stream (an enricher and community) the watermark and the
    lease of the one process polling it, and the outside changes already notified.

    Shared by every process on the backend. A change key is kept for at least the lookback of
    the reconciliation that might list it again (pruned by housekeeping).
    """

    async def hold(self, stream: str, holder: str, seconds: float) -> bool:
        """Take or renew the lease on polling ``stream`` for ``seconds``; ``False`` while
        another holder's lease runs."""
        ...

    async def release(self, stream: str, holder: str) -> None:
        """Give the lease up, so that another process takes over without waiting."""
        ...

    async def watermark(self, stream: str) -> float | None:
        """Epoch seconds up to which ``stream``'s changes are committed (``None``: never)."""
        ...

    async def commit(
        self, stream: str, holder: str, changes: Sequence[NewChange], watermark: float
    ) -> list[str] | None:
        """Enqueue the changes whose key was not seen yet, claim their keys, and move the
        watermark forward to ``watermark``: all in one transaction, only while ``holder``
        holds the lease. Returns the keys enqueued (``None``: lease lost, nothing written)."""
        ...

    async def prune(self, older_than: float) -> int:
        """Forget change keys seen more than ``older_than`` seconds ago; return how many."""
        ...


class DeadLetterStore(Protocol):
    """Operator access to what gave up: list, show, replay, purge."""

    async def deliveries(
        self, ids: Iterable[int] | None = None, *, limit: int | None = None, bodies: bool = False
    ) -> list[DeadLetter]:
        """Dead deliveries, oldest first (only ``ids`` when given; event bodies on request)."""
        ...

    async def events(self, ids: Iterable[str] | None = None) -> list[FailedEvent]:
        """Events that could not be routed, oldest first."""
        ...

    async def counts(self) -> tuple[int, int]:
        """How many dead deliveries and failed events there are."""
        ...

    async def all_ids(self) -> tuple[list[int], list[str]]:
        """Ids of every dead delivery and failed event."""
        ...

    async def replay_deliveries(self, ids: Iterable[int]) -> list[int]:
        """Make dead deliveries pending again, with a fresh age and attempt count."""
        ...

    async def replay_events(self, ids: Iterable[str]) -> list[str]:
        """Route failed events again; their age (and dedupe window) starts afresh."""
        ...

    async def purge(self, older_than: float = 0.0) -> tuple[int, int]:
        """Delete dead deliveries and failed events that gave up over ``older_than`` s ago."""
        ...


class Inspection(Protocol):
    """Read-only questions an operator asks (``status``, ``trace``); they never block writers."""

    async def snapshot(self) -> QueueSnapshot:
        """Counts by state, per-sink backlog, pauses and last errors, the oldest due delivery."""
        ...

    async def event_story(self, event_id: str) -> EventStory | None:
        """One event with its routing decisions, deliveries and attempts (``None``: unknown)."""
        ...

    async def events_mentioning(self, text: str, limit: int) -> list[tuple[str, bytes]]:
        """(id, body) of up to ``limit`` events whose body contains ``text``, oldest first.

        A scan of the stored bodies (bounded by retention): for an operator's look-up only.
        """
        ...


class Queue(IngestQueue, RoutingQueue, DeliveryQueue, GroupStore, GateStates, StormStore, Protocol):
    """A whole backend: every stage's needs, its lifecycle, housekeeping and operator access."""

    backend: str
    """``sqlite`` or ``postgres``."""

    async def open(self, *, create: bool = True, init: bool = False) -> None:
        """Connect and bring the schema up to date (``create=False``: it must exist already).

        ``init`` (``serve --init``) starts an empty queue even where one existed and is now
        missing; without it a backend that can tell a lost queue from a new one refuses.

        Raises :class:`QueueUnavailable` when the store cannot be reached or its schema is
        newer than this code.
        """
        ...

    async def close(self) -> None:
        """Finish what was submitted and disconnect."""
        ...

    def wake(self, keys: set[str]) -> None:
        """Set the wake-ups for ``keys`` in this process."""
        ...

    def dead_letters(self) -> DeadLetterStore:
        """Operator access to this queue's dead letters."""
        ...

    def message_refs(self) -> MessageRefs:
        """The conversations' first-message references in this backend."""
        ...

    def silences(self) -> SilenceStore:
        """The silences in this backend."""
        ...

    def process_states(self) -> ProcessStates:
        """The serving processes' reports of their in-memory state (``status``)."""
        ...

    def interactions(self) -> InteractionStore:
        """The chat actions queued in this backend."""
        ...

    def changes(self) -> ChangeLedger:
        """Reconciliation watermarks, leases and changes seen in this backend."""
        ...

    def sink_gate(self, sink: str, rate: float | None, burst: int) -> SinkGate:
        """The rate limit (``rate`` per second, ``None``: unlimited) and pause of ``sink``."""
        ...

    def inspection(self) -> Inspection:
        """Read-only operator queries on this queue."""
        ...

    async def bury_orphans(self, sinks: Iterable[str]) -> dict[str, int]:
        """Dead-letter pending deliveries whose sink is not in ``sinks``, counted by sink."""
        ...

    async def prune(self, older_than: float) -> int:
        """Forget finished work older than ``older_than`` seconds; return the events removed."""
        ...

    async def schema_version(self) -> int:
        """The schema version the store is at."""
        ...
