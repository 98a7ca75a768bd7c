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
from typing import Any

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


def routing_record(routed: Routed) -> str:
    """The JSON kept with the routed event."""
    return json.dumps(routing_data(routed), ensure_ascii=False)


def decisions_of(entry: dict[str, Any]) -> dict[str, Any]:
    """The decision keys of one route entry (everything but the base keys), in stored order."""
    return {key: value for key, value in entry.items() if key not in BASE_KEYS}
