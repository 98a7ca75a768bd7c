"""A size-bounded TTL cache with single-flight, for objects fetched from the Sekoia.io API.

An alert storm sends many events about one alert at once (creation, then a burst of
"occurrences" updates). Single-flight makes every event that asks for an object while a fetch
of it is in progress wait for that fetch instead of starting its own, so 50 events arriving
together cost one API call; the TTL cache then answers the stragglers.

A cached copy is only used for an event if it was fetched after the event happened: an
``updated`` event means the object changed, and a copy from before would show the old state.
The copy it replaces is kept as ``previous``, so a message can say "urgency 40 -> 80".
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any

JsonObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Fetched:
    """An object as fetched, and the copy fetched before it (if still remembered)."""

    value: JsonObject
    previous: JsonObject | None


@dataclass(slots=True)
class _Entry:
    value: JsonObject
    previous: JsonObject | None
    fetched_at: float  # wall clock when the fetch started (comparable to event timestamps)
    expires: float  # monotonic


class FlightCache:
    """Objects by key, each fetched at most once at a time; ``ttl`` 0 disables reuse.

    Entries past their TTL are not served but stay (within ``max_entries``, least recently
    used evicted first) to provide ``previous``.
    """

    def __init__(
        self,
        *,
        ttl: float,
        max_entries: int,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._monotonic = monotonic
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._flights: dict[Hashable, asyncio.Task[Fetched]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def get(
        self,
        key: Hashable,
        fetch: Callable[[], Awaitable[JsonObject]],
        *,
        not_before: float | None = None,
    ) -> Fetched:
        """The object under ``key``: cached, joined in flight, or fetched now.

        ``not_before`` (wall-clock seconds, e.g. when the event happened) rejects cached copies
        fetched earlier. A fetch in flight is always joined: it started moments ago, and the
        point is that a storm of events makes one call. Failures are not cached.
        """
        entry = self._entries.get(key)
        if (
            entry is not None
            and entry.expires > self._monotonic()
            and (not_before is None or entry.fetched_at >= not_before)
        ):
            self._entries.move_to_end(key)
            return Fetched(entry.value, entry.previous)
        flight = self._flights.get(key)
        if flight is None:
            previous = entry.value if entry is not None else None
            flight = asyncio.create_task(self._fetch(key, fetch, previous))
            # Retrieve the exception even if every waiter was cancelled (no "never retrieved").
            flight.add_done_callback(_consume_exception)
            self._flights[key] = flight
        # shield: a waiter being cancelled (shutdown, timeout) must not cancel the others' fetch.
        return await asyncio.shield(flight)

    async def _fetch(
        self, key: Hashable, fetch: Callable[[], Awaitable[JsonObject]], previous: JsonObject | None
    ) -> Fetched:
        started = self._clock()
        try:
            value = await fetch()
        finally:
            self._flights.pop(key, None)
        self._entries[key] = _Entry(value, previous, started, self._monotonic() + self.ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return Fetched(value, previous)

    async def aclose(self) -> None:
        """Cancel fetches still in flight (at shutdown)."""
        flights = list(self._flights.values())
        for flight in flights:
            flight.cancel()
        await asyncio.gather(*flights, return_exceptions=True)


def _consume_exception(task: asyncio.Task[Fetched]) -> None:
    if not task.cancelled():
        task.exception()
