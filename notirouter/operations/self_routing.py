"""The config warning for operational events routed to the sink they are about.

A ``sink-failing`` or ``dead-letter`` event about sink X, routed to X, most likely fails too:
nobody hears of the trouble. It is a warning, not an error (the sink may fail only for some
messages, and the event is still stored and logged). Each sink is tried with the real route
table, ``when`` conditions and ``continue`` included, on the event it would be about.
"""

from __future__ import annotations

from collections.abc import Iterable

from notirouter.api.operations import OperationalAction
from notirouter.operations.events import OperationalEvent
from notirouter.routing.context import EventContext
from notirouter.routing.table import RouteTable, decide

ABOUT_A_FAILING_SINK = (OperationalAction.SINK_FAILING, OperationalAction.DEAD_LETTER)


def self_routing_warnings(routes: RouteTable, sinks: Iterable[str]) -> list[str]:
    """One line per route that would send a failing sink's own trouble to that sink."""
    found: dict[tuple[str, str], list[str]] = {}
    for sink in sinks:
        for action in ABOUT_A_FAILING_SINK:
            event = OperationalEvent(action=action, subject=sink, sink=sink, detail="check")
            variables = EventContext.of(event).variables()
            for decision in decide(routes.candidates(event.type, action), variables):
                if decision.matched and sink in decision.route.sinks:
                    found.setdefault((decision.route.name, sink), []).append(action.value)
    return [
        f"route {route}: {' and '.join(actions)} events about sink {sink} go to {sink} itself, "
        f"which is the sink in trouble: send them to another sink too, or exclude it with "
        f'when: sink != "{sink}"'
        for (route, sink), actions in found.items()
    ]
