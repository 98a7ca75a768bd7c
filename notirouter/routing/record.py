"""What routing decided about one event, as stored with it (``notirouter trace`` reads it).

Kept small: the event's type and action, the names enrichment added, the enrichers that
failed (their reasons are already redacted), and for each candidate route, whether it matched
and why. Routes whose ``match`` did not accept the event's type and action were never
candidates and are not listed: the table indexes them away, and storing them would cost a
row per route per event.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from notirouter.routing.pipeline import Routed

ROUTING_VERSION = 1
MAX_NAMES = 20


def routing_record(routed: Routed, decided: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """The JSON kept with the routed event; ``decided``: more keys per route name (the
    ``silence`` and ``window`` that applied)."""
    extra = decided or {}
    return json.dumps(
        {
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
                    **extra.get(decision.route.name, {}),
                }
                for decision in routed.decisions
            ],
        },
        ensure_ascii=False,
    )
