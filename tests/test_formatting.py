"""The generic message: what an event of unknown type shows."""

from __future__ import annotations

from notirouter.api.escape import TRUNCATION_MARKER
from notirouter.api.events import Event
from notirouter.routing.generic_message import MAX_FACT_CHARS, generic_message


def test_a_long_attribute_is_cut_with_the_visible_marker() -> None:
    event = Event(type="intake", action="silent")
    message = generic_message(event, {"event": {"attributes": {"note": "x" * 5_000}}})
    value = {fact.name: fact.value for fact in message.facts}["note"]
    assert len(value) == MAX_FACT_CHARS
    assert value.endswith(TRUNCATION_MARKER)
