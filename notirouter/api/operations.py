"""Operational events: what notirouter reports about itself, as ``type: notirouter`` events.

Formatters and routes know them by their ``action`` (README "Operational events").
"""

from __future__ import annotations

from enum import StrEnum

OPERATIONAL_EVENT_TYPE = "notirouter"
"""The ``type`` of every operational event (and the name of the core source storing them)."""


class OperationalAction(StrEnum):
    """The ``action`` of each operational event (README "Operational events")."""

    SINK_FAILING = "sink-failing"
    SINK_RECOVERED = "sink-recovered"
    DEAD_LETTER = "dead-letter"
    ENRICHMENT_DOWN = "enrichment-down"
    ENRICHMENT_RECOVERED = "enrichment-recovered"
    # Emitted by the features that own them, through the same emitter:
    STORM_STARTED = "storm-started"
    STORM_ENDED = "storm-ended"
    RECONCILE_RECOVERED = "reconcile-recovered"
    CONFIG_RELOADED = "config-reloaded"
    CONFIG_REJECTED = "config-rejected"
