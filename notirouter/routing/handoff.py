"""Events parsed by this process's receiver, handed to its routing workers.

The receiver parses and validates every body before answering 202 (a bad one gets a 4xx);
routing used to decode and validate the same bytes again once it claimed the event. Kept here
by event id, the receiver's :class:`~notirouter.api.events.Event` is taken by the router that
claims it in the same process, which then skips both steps. The stored body stays the truth:
an event routed by another process, after a restart, after a reload (other source objects), or
once the hand-off is full, is parsed from the queue as before.
"""

from __future__ import annotations

import time

from notirouter.api.events import Event
from notirouter.api.source import Source

CAPACITY = 2048
"""Events held at most: about what a burst puts between the receiver and the routers. Beyond
that the oldest waiting events are the ones routed next, so new ones are not kept."""
STALE_SECONDS = 60.0
"""An event not taken for this long was claimed elsewhere (another process): forget it."""


class ParsedEvents:
    """A bounded map from event id to the event its source parsed at the door."""

    def __init__(self, capacity: int = CAPACITY, stale_after: float = STALE_SECONDS) -> None:
        self.capacity = capacity
        self.stale_after = stale_after
        # Insertion order is arrival order: the first entry is the oldest.
        self._events: dict[str, tuple[Source, Event, float]] = {}

    def __len__(self) -> int:
        return len(self._events)

    def keep(self, event_id: str, parser: Source, event: Event) -> None:
        """Hold ``event`` (parsed by ``parser``) for the router that claims ``event_id``."""
        now = time.monotonic()
        if len(self._events) >= self.capacity:
            oldest = next(iter(self._events))
            if now - self._events[oldest][2] < self.stale_after:
                return  # a backlog: the events held now are routed first
            del self._events[oldest]
        self._events[event_id] = (parser, event, now)

    def take(self, event_id: str, parser: Source | None) -> Event | None:
        """The event kept for ``event_id`` if ``parser`` (the router's source) parsed it."""
        found = self._events.pop(event_id, None)
        if found is None or found[0] is not parser:
            return None
        return found[1]
