"""A matched route's message as the queue gets it: at once, in a group, or gated.

A route with ``notify_on`` or ``throttle`` hands the queue a
:class:`~notirouter.queue.gates.GatedMessage`: what it releases when it passes (its deliveries,
or its group's item, saying what changed) and what a throttle folds into its window's digest.
The queue decides between them in the routing transaction (README "Storm control").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from notirouter.api.message import Message
from notirouter.queue.gates import Change, GatedMessage, Released
from notirouter.queue.records import NewDelivery, NewGroupItem
from notirouter.routing.notify_on import saying_changes
from notirouter.routing.table import Route

Hold = Callable[[Message, str], NewGroupItem]
"""Turns a message (and its stored JSON) into the item its route's closed window holds."""


def serialise(message: Message) -> str:
    """The message as stored, proven readable: a delivery job must not be dead on arrival."""
    stored = message.model_dump_json()
    Message.model_validate_json(stored)
    return stored


def release(
    route: Route,
    message: Message,
    message_json: str,
    variables: Mapping[str, Any],
    changes: tuple[Change, ...],
    hold: Hold | None = None,
    group_key: str | None = None,
) -> Released:
    """What ``message`` writes when it goes out: one delivery per sink, or its group's item,
    or (``hold``, its window is closed) the item held until the window opens; saying
    ``changes`` (what changed since the last notification) when there are any.

    ``group_key``: the group the pipeline already computed for the route (its ``by``
    templates are rendered once per event, not again here)."""
    if changes:
        message = saying_changes(message, changes)
        message_json = serialise(message)
    if hold is not None:
        return Released(items=(hold(message, message_json),))
    if route.group is None:
        return Released(
            deliveries=tuple(NewDelivery(route.name, sink, message_json) for sink in route.sinks)
        )
    key = group_key if group_key is not None else route.group.key(variables)
    return Released(items=(route.group.item(route.name, route.sinks, message, message_json, key),))


def gated_message(
    route: Route,
    message: Message,
    message_json: str,
    variables: Mapping[str, Any],
    hold: Hold | None = None,
    group_key: str | None = None,
) -> GatedMessage | None:
    """The message as the queue decides on it, or ``None`` when no gate applies (none
    configured, or every configured key rendered empty: then it goes out as usual)."""
    failed = variables.get("enrichment_errors") or {}
    enrichment_failed = any(name in failed for name in route.enrich)
    notify_on = None
    if route.notify_on is not None:
        notify_on = route.notify_on.check(variables, enrichment_failed=enrichment_failed)
    throttle = route.throttle.check(variables) if route.throttle is not None else None
    if notify_on is None and throttle is None:
        return None
    # Variables are captured, not copied: routing is done with them and they are not changed.

    def released(changes: tuple[Change, ...]) -> Released:
        return release(route, message, message_json, variables, changes, hold, group_key)

    def fold(changes: tuple[Change, ...], group_key: str, wait: float) -> NewGroupItem:
        assert route.throttle is not None
        shown = saying_changes(message, changes) if changes else message
        shown_json = serialise(shown) if changes else message_json
        return route.throttle.fold(route.name, route.sinks, shown, shown_json, group_key, wait)

    return GatedMessage(route.name, notify_on, throttle, released, fold)


def keyless_record(route: Route, gate: GatedMessage | None = None) -> dict[str, Any]:
    """The routing record of the configured gates whose key rendered empty (all of them when
    ``gate`` is ``None``): nothing to compare or count by, so those let the message through."""
    record: dict[str, Any] = {}
    if route.notify_on is not None and (gate is None or gate.notify_on is None):
        record["notify_on"] = {"key": None, "changed": True, "reason": "empty key: notified"}
    if route.throttle is not None and (gate is None or gate.throttle is None):
        record["throttle"] = {"key": None, "outcome": "passed", "reason": "empty key"}
    return record
