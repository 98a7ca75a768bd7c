"""Gates: a route's ``notify_on`` and ``throttle``, decided where their state is kept.

Whether a message goes out depends on what was notified before (``notify_on``) and how many
went out in the window (``throttle``). Both are decided inside the transaction that writes the
event's deliveries (``complete_event``), on the state rows it locks: with several processes two
updates of one alert are decided one after the other, and a crash between the decision and the
deliveries cannot happen, since they commit together or not at all.

This module holds what the router hands the queue (:class:`GatedMessage`), and the decisions
as pure functions of the stored state, shared by every backend.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from notirouter.queue.records import NewDelivery, NewGroupItem

THROTTLE_KIND = "throttle"
"""The ``kind`` of group a throttle's overflow is held in until its window ends."""

Values = Mapping[str, str]
# A listed value that changed: (expression, value last notified ("" unknown), value now).
Change = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class NotifyOnCheck:
    """This event's ``notify_on`` values for one key of a route.

    ``values`` maps each listed expression to its value, or ``None`` when it could not be
    evaluated: an unknown value never counts as unchanged, and never replaces a known one.
    """

    key: str
    values: tuple[tuple[str, str | None], ...]
    retention: float


@dataclass(frozen=True, slots=True)
class ThrottleCheck:
    """This event's ``throttle``: at most ``max`` per ``key`` per ``per`` seconds."""

    key: str
    max: int
    per: float


@dataclass(frozen=True, slots=True)
class Released:
    """What a message that passes its gates writes: deliveries, or its route's group item."""

    deliveries: tuple[NewDelivery, ...] = ()
    items: tuple[NewGroupItem, ...] = ()


@dataclass(frozen=True)
class GatedMessage:
    """A route's message whose fate the queue decides (see the module docstring).

    ``release(changes)`` is what goes out when it passes (the message saying ``changes``);
    ``fold(changes, group_key, wait)`` the item a throttle holds in its window's digest. Both
    are pure: a backend may call them again when it retries the transaction.
    """

    route: str
    notify_on: NotifyOnCheck | None
    throttle: ThrottleCheck | None
    release: Callable[[tuple[Change, ...]], Released]
    fold: Callable[[tuple[Change, ...], str, float], NewGroupItem]


@dataclass(frozen=True, slots=True)
class NotifyOnDecision:
    """Whether to notify, what changed, and the values to store if so."""

    notify: bool
    first: bool
    changes: tuple[Change, ...]
    stored: dict[str, str]

    def record(self, check: NotifyOnCheck) -> dict[str, Any]:
        """The routing record's ``notify_on`` entry."""
        return {
            "key": check.key,
            "values": dict(check.values),
            "changed": self.notify,
            "first": self.first,
            "changes": [list(change) for change in self.changes],
        }


def decide_notify(check: NotifyOnCheck, previous: Values | None) -> NotifyOnDecision:
    """Notify if nothing was stored for the key (``previous`` ``None``), or if a listed value
    differs from the one last notified or could not be evaluated (fail open)."""
    if previous is None:
        known = {expr: value for expr, value in check.values if value is not None}
        return NotifyOnDecision(True, True, (), known)
    changes: list[Change] = []
    unknown = False
    stored = dict(previous)
    for expression, value in check.values:
        if value is None:
            unknown = True
            continue
        old = previous.get(expression)
        if old != value:
            changes.append((expression, old or "", value))
        stored[expression] = value
    return NotifyOnDecision(bool(changes) or unknown, False, tuple(changes), stored)


def stored_values(text: str | None) -> dict[str, str] | None:
    """Values as stored (JSON), ``None`` for none or unreadable (then the event notifies)."""
    if text is None:
        return None
    try:
        loaded = json.loads(text)
    except ValueError:
        return None
    if not isinstance(loaded, dict):
        return None
    return {str(k): str(v) for k, v in loaded.items()}


def values_json(values: Values) -> str:
    """Values as stored."""
    return json.dumps(dict(values), ensure_ascii=False, sort_keys=True)


@dataclass(frozen=True, slots=True)
class ThrottleWindow:
    """A key's current window after counting this event (``count`` includes it)."""

    start: float
    end: float
    count: int

    def passed(self, check: ThrottleCheck) -> bool:
        """Whether this event is within the first ``max`` of its window."""
        return self.count <= check.max

    def record(self, check: ThrottleCheck) -> dict[str, Any]:
        """The routing record's ``throttle`` entry."""
        return {
            "key": check.key,
            "count": self.count,
            "max": check.max,
            "per": check.per,
            "window_ends": self.end,
            "outcome": "passed" if self.passed(check) else "folded",
        }


def next_window(
    check: ThrottleCheck, current: tuple[float, float, int] | None, now: float
) -> ThrottleWindow:
    """The window after counting one more event at ``now``: the current one (start, end,
    count) while it lasts, else a new one starting now."""
    if current is None or current[1] <= now:
        return ThrottleWindow(now, now + check.per, 1)
    start, end, count = current
    return ThrottleWindow(start, end, count + 1)


def throttle_group_key(check: ThrottleCheck, window: ThrottleWindow) -> str:
    """The group a window's overflow is held in: one per (key, window), shown in its digest
    (the (name, value) pairs of :func:`~notirouter.routing.grouping.group_facts`)."""
    started = datetime.fromtimestamp(window.start, UTC).isoformat(timespec="milliseconds")
    pairs = [
        [f"throttled beyond {check.max} per {_duration(check.per)}", check.key],
        ["window from", started.replace("+00:00", "Z")],
    ]
    return json.dumps(pairs, ensure_ascii=False, separators=(",", ":"))


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


StateKey = tuple[str, str]  # (route, key)
Window = tuple[float, float, int]  # (start, end, count)


@dataclass(frozen=True, slots=True)
class NotifiedWrite:
    """A ``notify_on`` row to store: the values (``None``: keep them, only seen now)."""

    route: str
    key: str
    values_json: str | None
    expires_at: float


@dataclass(frozen=True, slots=True)
class WindowWrite:
    """A throttle row to store: the key's window after this event."""

    route: str
    key: str
    window: ThrottleWindow


@dataclass
class GateOutcome:
    """What the gates of one event let through, their decisions per route, and the state
    rows to write in the same transaction."""

    deliveries: list[NewDelivery] = field(default_factory=list)
    items: list[NewGroupItem] = field(default_factory=list)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    notified: list[NotifiedWrite] = field(default_factory=list)
    windows: list[WindowWrite] = field(default_factory=list)


def notify_keys(gated: Iterable[GatedMessage]) -> list[StateKey]:
    """The ``notify_on`` rows an event needs, sorted (the order rows are locked in)."""
    return sorted({(g.route, g.notify_on.key) for g in gated if g.notify_on is not None})


def throttle_keys(gated: Iterable[GatedMessage]) -> list[StateKey]:
    """The throttle rows an event needs, sorted (the order rows are locked in)."""
    return sorted({(g.route, g.throttle.key) for g in gated if g.throttle is not None})


def apply_gates(
    gated: Iterable[GatedMessage],
    notified: Mapping[StateKey, Values | None],
    windows: Mapping[StateKey, Window | None],
    now: float,
) -> GateOutcome:
    """Decide every gated message of one event on the state read (and locked) for it."""
    outcome = GateOutcome()
    for message in gated:
        record: dict[str, Any] = {}
        outcome.records[message.route] = record
        changes: tuple[Change, ...] = ()
        check = message.notify_on
        if check is not None:
            decision = decide_notify(check, notified.get((message.route, check.key)))
            record["notify_on"] = decision.record(check)
            expires = now + check.retention
            if not decision.notify:
                outcome.notified.append(NotifiedWrite(message.route, check.key, None, expires))
                continue
            stored = values_json(decision.stored)
            outcome.notified.append(NotifiedWrite(message.route, check.key, stored, expires))
            changes = decision.changes
        throttle = message.throttle
        if throttle is not None:
            window = next_window(throttle, windows.get((message.route, throttle.key)), now)
            record["throttle"] = window.record(throttle)
            outcome.windows.append(WindowWrite(message.route, throttle.key, window))
            if not window.passed(throttle):
                key = throttle_group_key(throttle, window)
                outcome.items.append(message.fold(changes, key, max(0.0, window.end - now)))
                continue
        released = message.release(changes)
        outcome.deliveries.extend(released.deliveries)
        outcome.items.extend(released.items)
    return outcome


def with_gate_records(routing: str | None, records: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The routing record with each route's gate decisions (``notify_on``, ``throttle``)
    added to its entry, so ``trace`` can say why a message went out late or not at all."""
    if routing is None or not records:
        return routing
    try:
        document = json.loads(routing)
    except ValueError:
        return routing
    for entry in document.get("routes", []):
        found = records.get(entry.get("route"))
        if found and entry.get("matched"):
            entry.update(found)
    return json.dumps(document, ensure_ascii=False)
