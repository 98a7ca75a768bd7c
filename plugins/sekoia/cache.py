"""A size-bounded TTL cache with single-flight, for objects fetched from the Sekoia.io API.

An alert storm sends many events about one alert at once (creation, then a burst of
"occurrences" updates). Single-flight makes every event that asks for an object while a fetch
of it is in progress wait for that fetch instead of starting its own, so 50 events arriving
together cost one API call; the TTL cache then answers the stragglers.

A cached copy, or a fetch in flight, is only used for an event if its fetch started after
``not_before``, which the caller derives from when it saw the event: an ``updated`` event means
the object changed, and a copy from before would show the old state. Every time here is this
machine's monotonic clock: Sekoia.io's timestamps come from another clock, and with any skew
between the two a comparison would either never hit or serve a copy from before the event.
The copy a fetch replaces is kept as ``previous``, so a message can say "urgency 40 -> 80".
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
    started: float  # monotonic, when the fetch that got it started
    expires: float  # monotonic


@dataclass(frozen=True, slots=True)
class _Flight:
    started: float  # monotonic, taken before the request is sent: errs towards "too old"
    task: asyncio.Task[Fetched]


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
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._monotonic = monotonic
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._flights: dict[Hashable, _Flight] = {}
        self._tasks: set[asyncio.Task[Fetched]] = set()  # every fetch running, superseded too
        # For ``notirouter status``: answered from a cached copy, by joining a fetch in
        # flight, or by a fetch of its own.
        self.hits = 0
        self.joined = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def now(self) -> float:
        """The clock ``not_before`` is measured on."""
        return self._monotonic()

    async def get(
        self,
        key: Hashable,
        fetch: Callable[[], Awaitable[JsonObject]],
        *,
        not_before: float | None = None,
    ) -> Fetched:
        """The object under ``key``: cached, joined in flight, or fetched now.

        ``not_before`` (on :meth:`now`'s clock) rejects cached copies and fetches in flight
        that started earlier: a fetch that began before the event may not show its change.
        ``None`` accepts any copy within the TTL. Failures are not cached.
        """
        entry = self._entries.get(key)
        if (
            entry is not None
            and entry.expires > self._monotonic()
            and (not_before is None or entry.started >= not_before)
        ):
            self._entries.move_to_end(key)
            self.hits += 1
            return Fetched(entry.value, entry.previous)
        flight = self._flights.get(key)
        if flight is None or (not_before is not None and flight.started < not_before):
            self.misses += 1
            # A flight too old for this event goes on for its own waiters; the new one takes
            # its place for the events that come next.
            started = self._monotonic()
            previous = entry.value if entry is not None else None
            task = asyncio.create_task(self._fetch(key, fetch, started, previous))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            # Retrieve the exception even if every waiter was cancelled (no "never retrieved").
            task.add_done_callback(_consume_exception)
            flight = self._flights[key] = _Flight(started, task)
        else:
            self.joined += 1
        # shield: a waiter being cancelled (shutdown, timeout) must not cancel the others' fetch.
        return await asyncio.shield(flight.task)

    async def _fetch(
        self,
        key: Hashable,
        fetch: Callable[[], Awaitable[JsonObject]],
        started: float,
        previous: JsonObject | None,
    ) -> Fetched:
        try:
            value = await fetch()
        finally:
            flight = self._flights.get(key)
            if flight is not None and flight.task is asyncio.current_task():
                del self._flights[key]
        current = self._entries.get(key)
        if current is not None and current.started > started:
            # A fetch started after this one has already answered: its copy is the newer one
            # and stays; this one's waiters still get what they waited for.
            return Fetched(value, previous)
        if current is not None:
            previous = current.value  # the copy this one replaces, maybe newer than at start
        self._entries[key] = _Entry(value, previous, started, self._monotonic() + self.ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return Fetched(value, previous)

    def status(self) -> dict[str, Any]:
        """Its size and how requests were answered, for ``notirouter status``."""
        return {
            "entries": len(self._entries),
            "max_entries": self.max_entries,
            "ttl_seconds": self.ttl,
            "hits": self.hits,
            "joined": self.joined,
            "misses": self.misses,
            "fetching": len(self._flights),
        }

    async def aclose(self) -> None:
        """Cancel fetches still in flight (at shutdown)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _consume_exception(task: asyncio.Task[Fetched]) -> None:
    if not task.cancelled():
        task.exception()
