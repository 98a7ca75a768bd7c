"""The receiver's parsed events, handed to this process's routers (routing/handoff.py)."""

from __future__ import annotations

from notirouter.api.events import Event
from notirouter.operations.events import OperationalSource
from notirouter.routing.handoff import ParsedEvents


def event(n: int) -> Event:
    return Event(type="alert", action=f"created-{n}")


def test_the_router_takes_the_event_once_and_only_from_the_same_parser() -> None:
    parser, other = OperationalSource(), OperationalSource()
    parsed = ParsedEvents()
    parsed.keep("a", parser, event(1))
    parsed.keep("b", parser, event(2))
    assert parsed.take("a", other) is None  # a reload's new source parses the body itself
    assert parsed.take("a", parser) is None  # ... and the entry is gone either way
    found = parsed.take("b", parser)
    assert found is not None and found.action == "created-2"
    assert parsed.take("b", parser) is None
    assert len(parsed) == 0


def test_a_backlog_keeps_the_oldest_events_and_forgets_stale_ones() -> None:
    parser = OperationalSource()
    parsed = ParsedEvents(capacity=3)
    for n in range(5):
        parsed.keep(str(n), parser, event(n))
    assert len(parsed) == 3
    assert parsed.take("4", parser) is None  # not kept: the held ones are routed first
    assert parsed.take("0", parser) is not None
    stale = ParsedEvents(capacity=2, stale_after=0.0)  # claimed elsewhere: never taken here
    for n in range(4):
        stale.keep(str(n), parser, event(n))
    assert len(stale) == 2
    assert stale.take("3", parser) is not None
    assert stale.take("0", parser) is None
