"""What a route's ``notify_on`` and ``throttle`` would decide for ``notirouter route``.

The dry run reads the stored state (the values last notified, the current window) without
changing it and applies the same decision as the routing transaction; if the queue cannot be
read, it says so instead of guessing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from notirouter.config.models import QueueConfig
from notirouter.queue.factory import open_queue
from notirouter.queue.gates import GatedMessage, apply_gates
from notirouter.queue.protocol import QueueUnavailable
from notirouter.routing.gating import gated_message, keyless_record
from notirouter.routing.pipeline import Routed


@dataclass
class GateReport:
    """Per gated route: the decision (routing-record entries), and why a message is held."""

    routes: list[str] = field(default_factory=list)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    withheld: dict[str, str] = field(default_factory=dict)
    problem: str | None = None


async def gate_report(settings: QueueConfig, routed: Routed) -> GateReport:
    """The decisions the gated routes of ``routed`` would take now."""
    report = GateReport()
    gated: list[GatedMessage] = []
    for route, message in routed.messages:
        if route.notify_on is None and route.throttle is None:
            continue
        report.routes.append(route.name)
        gate = gated_message(route, message, message.model_dump_json(), routed.variables)
        report.records[route.name] = keyless_record(route, gate)
        if gate is not None:
            gated.append(gate)
    if not gated:
        return report
    try:
        queue = await open_queue(settings, create=False)
        try:
            notified, windows = await queue.gate_state(gated)
        finally:
            await queue.close()
    except (QueueUnavailable, OSError) as exc:
        report.problem = f"could not read the stored notify_on/throttle state: {exc}"
        return report
    outcome = apply_gates(gated, notified, windows, time.time())
    for name, record in outcome.records.items():
        record = report.records[name] = {**report.records.get(name, {}), **record}
        notify_on = record.get("notify_on")
        throttle = record.get("throttle")
        if notify_on is not None and not notify_on["changed"]:
            report.withheld[name] = "notify_on: no listed value changed"
        elif throttle is not None and throttle["outcome"] == "folded":
            report.withheld[name] = "throttle: folded into the digest sent when the window ends"
    return report
