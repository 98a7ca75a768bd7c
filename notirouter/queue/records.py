"""What the queue stores: events as received, and one delivery job per (event, route, sink)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    """Answer to an enqueue: the event id, and whether the event had been seen already."""

    id: str
    duplicate: bool


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An accepted event, claimed by a routing worker under a lease."""

    id: str
    hook: str
    source: str
    body: bytes
    received_at: float
    attempts: int
    lease: int


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A delivery job to create when an event has been routed and formatted."""

    route: str
    sink: str
    message_json: str


@dataclass(frozen=True, slots=True)
class StoredDelivery:
    """A delivery job, claimed by its sink's dispatcher under a lease."""

    id: int
    event_id: str
    route: str
    sink: str
    message_json: str
    attempts: int
    created_at: float
    lease: int


@dataclass(frozen=True, slots=True)
class StoredInteraction:
    """A chat action (a button clicked), claimed by the interaction worker under a lease."""

    id: int
    sink: str
    payload: str
    """The verified click as JSON (:class:`~notirouter.api.interaction.Click`)."""
    attempts: int
    created_at: float
    lease: int
    result: str | None = None
    """What earlier attempts recorded (JSON), e.g. which steps are done already."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A delivery that will not be retried any more, with the reason."""

    id: int
    event_id: str
    route: str
    sink: str
    attempts: int
    created_at: float
    finished_at: float
    last_error: str
    message_json: str
    event_body: bytes | None


@dataclass(frozen=True, slots=True)
class FailedEvent:
    """An event that could not be routed before its maximum age, with the reason."""

    id: str
    hook: str
    source: str
    received_at: float
    attempts: int
    last_error: str
    body: bytes


@dataclass(frozen=True, slots=True)
class AttemptNote:
    """What one delivery attempt found, kept in the delivery's history (``trace``).

    ``outcome`` is ``delivered``, ``retry``, ``misconfigured``, ``permanent``, ``dead`` (given
    up) or ``unreadable``; ``detail`` is already redacted; ``paused_until`` is set when the
    answer paused the whole sink (``Retry-After``).
    """

    outcome: str
    detail: str | None = None
    status: int | None = None
    paused_until: float | None = None


_STATE_OUTCOMES = {"done": "delivered", "dead": "dead", "pending": "retry"}


def attempt_note(state: str, error: str | None, attempt: AttemptNote | None) -> AttemptNote:
    """The note an attempt leaves: the one given, else what its new ``state`` implies."""
    if attempt is not None:
        return attempt
    return AttemptNote(_STATE_OUTCOMES.get(state, state), error)


@dataclass(frozen=True, slots=True)
class RoutedEvent:
    """A routed event's jobs, group items and routing record, waiting to be written."""

    event: StoredEvent
    jobs: tuple[NewDelivery, ...]
    items: tuple[NewGroupItem, ...]
    routing: str | None


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """One attempt's outcome, waiting to be recorded with the others of its batch."""

    delivery: StoredDelivery
    state: str
    error: str | None
    next_at: float
    at: float
    note: AttemptNote


@dataclass(frozen=True, slots=True)
class NewGroupItem:
    """A message a grouped route holds for its group instead of delivering it at once.

    ``kind`` names what holds it (``group`` for now; throttles and quiet hours can hold in
    the same tables). The group's settings travel with each item, so the latest config wins
    and a group whose route was removed still flushes what it holds.
    """

    kind: str
    route: str
    group_key: str
    sinks: tuple[str, ...]
    wait: float
    interval: float
    max_items: int
    message_json: str
    severity: int
    link: str | None


@dataclass(frozen=True, slots=True)
class GroupedItem:
    """A held message of a due group (``message_json`` only for the first ``max_items``)."""

    id: int
    event_id: str
    severity: int
    link: str | None
    message_json: str | None


@dataclass(frozen=True, slots=True)
class DueGroup:
    """A group whose timer ran out, with everything it holds, oldest first."""

    kind: str
    route: str
    group_key: str
    sinks: tuple[str, ...]
    max_items: int
    flushes: int
    items: list[GroupedItem]


@dataclass(frozen=True, slots=True)
class FlushedMessage:
    """What a flushed group sends (one delivery per sink), and the event id it goes under."""

    event_id: str
    message_json: str


@dataclass(frozen=True, slots=True)
class StoredSilence:
    """A silence (README "Silences"): its matchers as (name, operator, value), its author's
    note, and its end; ``expired_at`` is set when it was expired by hand."""

    id: str
    matchers: tuple[tuple[str, str, str], ...]
    created_at: float
    ends_at: float
    comment: str
    author: str
    expired_at: float | None = None

    def active(self, now: float) -> bool:
        """Whether it silences events at ``now``."""
        return self.created_at <= now < self.ends_at


@dataclass(frozen=True, slots=True)
class FoldedItem:
    """A pending delivery storm mode folds into its route's digest (README "Storm mode")."""

    id: int
    event_id: str
    message_json: str


@dataclass(frozen=True, slots=True)
class StormStep:
    """What one storm-mode check of a sink found and did (all in one transaction).

    ``started``/``ended``: this check turned storm mode on or off (on a shared backend, only
    the process whose check did it sees them set); ``folded`` deliveries went into
    ``digests`` new digest deliveries; ``backlog`` is what is left pending for the sink.
    """

    active: bool
    backlog: int
    since: float | None = None
    started: bool = False
    ended: bool = False
    folded: int = 0
    digests: int = 0
    found: int = 0
    """The backlog this check found, before it folded anything."""


@dataclass(frozen=True, slots=True)
class StormState:
    """A sink's storm mode as stored (``status`` shows it): on since when, and its totals."""

    sink: str
    active: bool
    since: float | None
    ended_at: float | None
    storms: int
    folded: int
    digests: int


def caught_up(
    backlog: int, folded_at: float | None, since: float | None, now: float, after: float
) -> bool:
    """Whether a sink in storm mode caught up: nothing pending, and nothing folded for
    ``after`` seconds (a storm that pauses for a moment is still one storm, not many)."""
    quiet_since = folded_at if folded_at is not None else since
    return backlog == 0 and (quiet_since is None or now - quiet_since >= after)


DigestBuilder = Callable[[str, list[FoldedItem]], FlushedMessage]
"""Storm mode's digest of one route's folded deliveries (see ``delivery/digests.py``)."""


@dataclass(frozen=True, slots=True)
class NewChange:
    """A change found by reconciliation, to enqueue as an event unless already notified.

    ``key`` names the outside change (e.g. an alert's uuid and ``updated_at``); the webhook
    event that reports the same change carries the same key once enriched (its
    :class:`ChangeMark`), so whichever comes second is not notified again.
    """

    key: str
    hook: str
    source: str
    body: bytes


@dataclass(frozen=True, slots=True)
class ChangeMark:
    """What a routed event says about the outside change it reports.

    Recorded with the event's jobs: if reconciliation already enqueued ``key``, the event is
    marked routed with ``routing_if_seen`` and no job, as the change is notified already.
    """

    key: str
    routing_if_seen: str | None = None
