"""What routing decided about one event, as stored with it (``notirouter trace`` reads it).

Kept small: the event's type and action, its community, the names enrichment added, the
enrichers that failed (their reasons are already redacted), and for each candidate route,
whether it matched and why. Routes whose ``match`` did not accept the event's type, action or
community were never candidates and are not listed: the table indexes them away, and storing
them would cost a row per route per event.

Each matched route's entry also holds the storm-control decisions taken for it, one key per
concern (``group``, ``storm``, ``community``, ``throttle``, ``notify_on``, ``window``,
``silence``...), taken from :attr:`Routed.notes`. ``trace`` and the dry run (``route``) show
every such key they find, known or not, so a new decision needs no display code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from notirouter.routing.notify_on import describe_changes
from notirouter.routing.pipeline import Routed

ROUTING_VERSION = 1
MAX_NAMES = 20
# The keys every route entry has; anything else in an entry is a decision (shown generically).
BASE_KEYS = frozenset({"route", "matched", "reason", "when_error", "sinks"})


def routing_data(routed: Routed) -> dict[str, Any]:
    """What routing decided, as plain data (stored as JSON; the dry run prints it too)."""
    data: dict[str, Any] = {
        "version": ROUTING_VERSION,
        "type": routed.event.type,
        "action": routed.event.action,
        # What enrichment added (the names templates see: ``alert``, ``case``...).
        "enriched": sorted(routed.variables["enrichment"])[:MAX_NAMES],
        "enrichment_errors": dict(routed.enrichment_errors),
        "routes": [
            {
                "route": decision.route.name,
                "matched": decision.matched,
                "reason": decision.reason,
                "when_error": decision.error,
                "sinks": list(decision.route.sinks) if decision.matched else [],
                **routed.notes.get(decision.route.name, {}),
            }
            for decision in routed.decisions
        ],
    }
    if routed.community_uuid is not None:
        data["community"] = {"name": routed.community, "uuid": routed.community_uuid}
    return data


def routing_record(
    routed: Routed,
    decided: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    already_notified: bool = False,
) -> str:
    """The JSON kept with the routed event; ``decided``: more keys per route name (the
    ``silence`` and ``window`` that applied); ``already_notified``: its change was notified by
    reconciliation first, and the event wrote no job."""
    data = routing_data(routed)
    if routed.change_key is not None:
        data = {
            "change": {"key": routed.change_key, "already_notified": already_notified},
            **data,
        }
    for entry in data["routes"]:
        entry.update((decided or {}).get(entry["route"], {}))
    return json.dumps(data, ensure_ascii=False)


# Decisions with lines of their own (gate_lines, and the silence and window lines of route
# and trace): the generic display leaves them out rather than show them twice.
SHOWN_APART = frozenset({"notify_on", "throttle", "silence", "window"})


def decisions_of(entry: dict[str, Any]) -> dict[str, Any]:
    """The decision keys of one route entry (everything but the base keys and those shown on
    lines of their own), in stored order."""
    return {
        key: value
        for key, value in entry.items()
        if key not in BASE_KEYS and key not in SHOWN_APART
    }


def gate_lines(entry: Mapping[str, Any]) -> list[str]:
    """What a route entry's ``notify_on`` and ``throttle`` decided, one line each (``trace``
    and ``route`` print them): why a message went out, late, or not at all."""
    lines = []
    notify_on = entry.get("notify_on")
    if isinstance(notify_on, Mapping):
        lines.append("notify_on: " + _notify_on_line(notify_on))
    throttle = entry.get("throttle")
    if isinstance(throttle, Mapping):
        lines.append("throttle: " + _throttle_line(throttle))
    return lines


def _notify_on_line(decision: Mapping[str, Any]) -> str:
    key = decision.get("key")
    if key is None:
        return str(decision.get("reason") or "no key: notified")
    values = decision.get("values") or {}
    if not decision.get("changed"):
        shown = ", ".join(f"{name}={value}" for name, value in values.items())
        return (
            f"key {key}: no listed value changed since the last notification ({shown}): no message"
        )
    if decision.get("first"):
        return f"key {key}: first notification for this key"
    changes = [tuple(change) for change in decision.get("changes") or []]
    if not changes:
        return f"key {key}: a listed value could not be evaluated: notified"
    return f"key {key}: changed: {'; '.join(describe_changes(changes))}"


def _throttle_line(decision: Mapping[str, Any]) -> str:
    key = decision.get("key")
    if key is None:
        return str(decision.get("reason") or "no key") + ": passed"
    count, limit = decision.get("count"), decision.get("max")
    ends = decision.get("window_ends")
    until = ""
    if isinstance(ends, int | float):
        until = " ending " + datetime.fromtimestamp(ends, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if decision.get("outcome") == "folded":
        return (
            f"key {key}: event {count} in the window{until} (max {limit}): folded into the "
            "digest sent when the window ends"
        )
    return f"key {key}: event {count} of at most {limit} in the window{until}: passed"
