"""The generic message, used when no formatter plugin knows an event type."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from notirouter.api.escape import truncate
from notirouter.api.events import Event
from notirouter.api.message import Fact, Message, Severity

MAX_GENERIC_FACTS = 20
MAX_FACT_CHARS = 500


def generic_message(event: Event, variables: Mapping[str, Any]) -> Message:
    """Title from type and action; the event's scalar attributes as facts."""
    data = variables.get("event", {})
    attributes = data.get("attributes") if isinstance(data, dict) else None
    facts = [Fact(name="type", value=event.type), Fact(name="action", value=event.action)]
    if isinstance(attributes, dict):
        for key, value in list(attributes.items())[:MAX_GENERIC_FACTS]:
            facts.append(Fact(name=str(key), value=fact_value(value)))
    thread = attributes.get("uuid") if isinstance(attributes, dict) else None
    return Message(
        title=f"{event.type} {event.action}",
        severity=Severity.INFO,
        facts=tuple(facts),
        thread_key=str(thread) if thread else None,
    )


def fact_value(value: Any) -> str:
    """A value as one short line of text (JSON for lists and objects)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return truncate(text, MAX_FACT_CHARS)
