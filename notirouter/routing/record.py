"""What routing decided about one event, as stored with it (``notirouter trace`` reads it).

Kept small: the event's type and action, the names enrichment added, the enrichers that
failed (their reasons are already redacted), and for each candidate route, whether it matched
and why. Routes whose ``match`` did not accept the event's type and action were never
candidates and are not listed: the table indexes them away, and storing them would cost a
row per route per event.
"""

from __future__ import annotations

import json

from notirouter.routing.pipeline import Routed

ROUTING_VERSION = 1
MAX_NAMES = 20


def routing_record(routed: Routed, *, already_notified: bool = False) -> str:
    """The JSON kept with the routed event (``already_notified``: its change was notified by
    reconciliation first, and the event wrote no job)."""
    extra: dict[str, object] = {}
    if routed.change_key is not None:
        extra["change"] = {"key": routed.change_key, "already_notified": already_notified}
    return json.dumps(
        {
            **extra,
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
                }
                for decision in routed.decisions
            ],
        },
        ensure_ascii=False,
    )
