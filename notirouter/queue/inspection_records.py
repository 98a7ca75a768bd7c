"""What ``status`` and ``trace`` read from the queue: a snapshot, and one event's story."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from notirouter.queue.records import StormState


@dataclass(frozen=True, slots=True)
class SinkBacklog:
    """One sink's deliveries in the queue, its pause and its last failure."""

    sink: str
    states: dict[str, int]
    """Deliveries per state (``pending``, ``done``, ``dead``)."""
    due: int
    """Pending deliveries due now (waiting for the sink, not for a retry time)."""
    next_due_at: float | None
    """When its earliest pending delivery is (or was) due."""
    paused_until: float | None = None
    """The end of a ``Retry-After`` pause still running (``None``: not paused)."""
    last_error: str | None = None
    """The detail of its latest failed attempt (redacted before it was stored)."""
    last_error_at: float | None = None
    last_outcome: str | None = None


@dataclass(frozen=True, slots=True)
class OldestDue:
    """The pending delivery that has waited longest among those due now."""

    delivery_id: int
    event_id: str
    sink: str
    route: str
    created_at: float
    due_at: float
    attempts: int


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """The queue as ``status`` shows it, read at ``taken_at``."""

    taken_at: float
    events: dict[str, int]
    deliveries: dict[str, int]
    sinks: list[SinkBacklog]
    oldest_due: OldestDue | None
    oldest_pending_event_at: float | None
    storms: list[StormState] = field(default_factory=list)
    """Each sink's storm mode as stored (sinks that never stormed are absent)."""


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One delivery attempt as recorded when its outcome was."""

    attempt: int
    at: float
    outcome: str
    status: int | None
    detail: str | None
    next_attempt_at: float | None
    paused_until: float | None


@dataclass(frozen=True, slots=True)
class DeliveryStory:
    """A delivery job with every attempt made."""

    id: int
    route: str
    sink: str
    state: str
    attempts: int
    created_at: float
    next_attempt_at: float
    finished_at: float | None
    last_error: str | None
    history: list[AttemptRecord] = field(default_factory=list)
    folded_into: int | None = None
    """Storm mode folded it into this digest delivery (its state is ``folded``)."""
    folded_into_state: str | None = None
    """The state of that digest delivery (``pending``, ``done``, ``dead``)."""


@dataclass(frozen=True, slots=True)
class EventStory:
    """One stored event: as received, what routing decided, and its deliveries."""

    id: str
    hook: str
    source: str
    dedupe_key: str
    received_at: float
    state: str
    attempts: int
    next_attempt_at: float
    last_error: str | None
    routing: str | None
    """What routing decided (JSON, see :mod:`notirouter.routing.record`); ``None`` before."""
    body: bytes
    deliveries: list[DeliveryStory]


def story_from_rows(
    event: Sequence[Any], deliveries: Iterable[Sequence[Any]], attempts: Iterable[Sequence[Any]]
) -> EventStory:
    """An :class:`EventStory` from the backends' rows, in the columns both select.

    ``event``: id, hook, source, dedupe_key, received_at, state, attempts, next_attempt_at,
    last_error, routing, body; ``deliveries``: id, route, sink, state, attempts, created_at,
    next_attempt_at, finished_at, last_error (then, optionally, folded_into and that digest's
    state); ``attempts``: delivery id, attempt, at, outcome, status, detail, next_attempt_at,
    paused_until.
    """
    history: dict[int, list[AttemptRecord]] = {}
    for a in attempts:
        history.setdefault(int(a[0]), []).append(
            AttemptRecord(a[1], a[2], a[3], a[4], a[5], a[6], a[7])
        )
    return EventStory(
        id=event[0],
        hook=event[1],
        source=event[2],
        dedupe_key=event[3],
        received_at=event[4],
        state=event[5],
        attempts=event[6],
        next_attempt_at=event[7],
        last_error=event[8],
        routing=event[9],
        body=bytes(event[10]),
        deliveries=[
            DeliveryStory(
                d[0],
                d[1],
                d[2],
                d[3],
                d[4],
                d[5],
                d[6],
                d[7],
                d[8],
                history.get(int(d[0]), []),
                d[9] if len(d) > 9 else None,
                d[10] if len(d) > 10 else None,
            )
            for d in deliveries
        ],
    )


@dataclass(frozen=True, slots=True)
class ProcessReport:
    """What one serving process last published about its memory (``status`` shows it).

    ``state`` is the JSON text the process wrote (see notirouter/operations/process_state.py);
    ``expires_at`` is when, without a newer report, the process no longer counts as live.
    """

    process_id: str
    host: str
    pid: int
    started_at: float
    reported_at: float
    expires_at: float
    state: str
