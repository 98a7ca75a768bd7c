"""From an enricher's :meth:`~notirouter.api.enricher.EnricherContext.report_health` to the
``enrichment-down`` and ``enrichment-recovered`` operational events."""

from __future__ import annotations

from notirouter.api.enricher import EnricherHealth
from notirouter.api.operations import OperationalAction
from notirouter.operations.emitter import OperationsEmitter


def enricher_health(emitter: OperationsEmitter, enricher: str) -> EnricherHealth:
    """The ``health`` callback handed to the enricher named ``enricher``."""

    def report(available: bool, reason: str) -> None:
        action = (
            OperationalAction.ENRICHMENT_RECOVERED
            if available
            else OperationalAction.ENRICHMENT_DOWN
        )
        emitter.emit(action, enricher, enricher=enricher, detail=reason)

    return report
