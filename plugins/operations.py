"""Default messages for notirouter's operational events (``type: notirouter``).

One title per action, the event's own words as the text, and its sink or enricher, counts and
process as facts; routes may override any of it with ``title``/``text``/``facts`` templates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from notirouter import (
    OPERATIONAL_EVENT_TYPE,
    Event,
    Fact,
    Message,
    OperationalAction,
    Severity,
    hookimpl,
    truncate,
)

MAX_TEXT_CHARS = 2000
MAX_IDS_SHOWN = 20

A = OperationalAction
# action -> (title with {subject}, severity)
_TITLES: dict[str, tuple[str, Severity]] = {
    A.SINK_FAILING: ("Sink {subject} is failing", Severity.HIGH),
    A.SINK_RECOVERED: ("Sink {subject} delivers again", Severity.INFO),
    A.DEAD_LETTER: ("A notification to {subject} became a dead letter", Severity.HIGH),
    A.ENRICHMENT_DOWN: ("Enricher {subject} is down", Severity.MEDIUM),
    A.ENRICHMENT_RECOVERED: ("Enricher {subject} works again", Severity.INFO),
    A.STORM_STARTED: ("Alert storm started{on}", Severity.HIGH),
    A.STORM_ENDED: ("Alert storm ended{on}", Severity.INFO),
    A.RECONCILE_RECOVERED: (
        "{count} alert changes recovered from the Sekoia.io API",
        Severity.MEDIUM,
    ),
    A.CONFIG_RELOADED: ("Configuration reloaded", Severity.INFO),
    A.CONFIG_REJECTED: ("Configuration rejected: the previous one stays", Severity.HIGH),
}
_COUNTED = frozenset({A.SINK_FAILING, A.RECONCILE_RECOVERED})  # a 0 count is worth showing
# Shown as facts, in this order, when the event carries them.
_FACT_KEYS = ("sink", "enricher", "count", "suppressed", "delivery_id", "event_id", "process")


@hookimpl
def format_message(event: Event, variables: Mapping[str, Any]) -> Message | None:
    """The default message of an operational event; ``None`` for any other type."""
    if event.type != OPERATIONAL_EVENT_TYPE:
        return None
    data = event.template_data()
    subject = str(data.get("subject") or "")
    template, severity = _TITLES.get(event.action, ("notirouter: {action}", Severity.INFO))
    title = template.format(
        subject=subject or "?",
        on=f" on {subject}" if subject else "",
        count=data.get("count", 0),
        action=event.action,
    )
    facts = [Fact(name="action", value=event.action)]
    for key in _FACT_KEYS:
        value = data.get(key)
        if value not in (None, "", 0) or (key == "count" and event.action in _COUNTED):
            facts.append(Fact(name=key.replace("_", " "), value=str(value)))
    ids = data.get("ids")
    if isinstance(ids, list) and ids:
        shown = ", ".join(str(i) for i in ids[:MAX_IDS_SHOWN])
        more = len(ids) - MAX_IDS_SHOWN
        facts.append(Fact(name="ids", value=shown + (f" (+{more} more)" if more > 0 else "")))
    return Message(
        title=title,
        text=truncate(str(data.get("detail") or ""), MAX_TEXT_CHARS),
        severity=severity,
        facts=tuple(facts),
    )
