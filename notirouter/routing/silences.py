"""The silences routing applies (README "Silences"), read from the queue at most once a second.

Routing asks :meth:`ActiveSilences.find` for each event, after enrichment. The active
silences are read again when the copy in memory is over :data:`REFRESH_SECONDS` old, by the
first event routed after that: a silence added or expired by ``notirouter silence`` (another
process, on either backend) applies within a second, and an idle process reads nothing. If the
queue cannot be read, the last silences read stay in force (and it says so, once a minute).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from notirouter.queue.protocol import QueueUnavailable, SilenceStore
from notirouter.queue.records import StoredSilence
from notirouter.routing.quiet_hours import iso
from notirouter.routing.silence_matchers import Matcher, MatcherError, matches_all
from notirouter.throttled_log import ThrottledLog

log = logging.getLogger("notirouter.silences")
REFRESH_SECONDS = 1.0


@dataclass(frozen=True)
class Silence:
    """A stored silence with its matchers compiled."""

    stored: StoredSilence
    matchers: tuple[Matcher, ...]

    @property
    def id(self) -> str:
        """The silence id (``silence expire ID``)."""
        return self.stored.id

    def record(self) -> dict[str, Any]:
        """The ``silence`` entry of the routing record and of the dry run."""
        return {
            "id": self.stored.id,
            "matchers": [str(m) for m in self.matchers],
            "until": iso(self.stored.ends_at),
            "comment": self.stored.comment,
            "author": self.stored.author,
        }


def compile_silence(stored: StoredSilence) -> Silence:
    """Compile a stored silence; raise :class:`MatcherError` if a matcher is invalid."""
    matchers = tuple(Matcher(n, o, v) for n, o, v in stored.matchers)
    for matcher in matchers:
        matcher.check()
    return Silence(stored, matchers)


class ActiveSilences:
    """The active silences of one store, refreshed at most once a second when used."""

    def __init__(
        self,
        store: Callable[[], SilenceStore] | None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # A function: the queue's store exists only once the queue is open.
        self.store = store
        self._clock = clock
        self._silences: tuple[Silence, ...] = ()
        self._read_at: float | None = None
        self._lock = asyncio.Lock()
        self._failures = ThrottledLog(log)

    async def refresh(self) -> None:
        """Read the active silences again if the copy is older than a second."""
        if self.store is None or not self._stale():
            return
        async with self._lock:
            if not self._stale():
                return  # another worker read them while this one waited
            try:
                stored = await self.store().listing()
            except QueueUnavailable as exc:
                self._failures.log(
                    logging.WARNING,
                    "read",
                    "silences could not be read (%s); the last ones read stay in force",
                    exc,
                )
                self._read_at = self._clock()  # try again in a second, not per event
                return
            self._silences = tuple(self._compiled(stored))
            self._read_at = self._clock()

    def _stale(self) -> bool:
        return self._read_at is None or self._clock() - self._read_at >= REFRESH_SECONDS

    def _compiled(self, stored: list[StoredSilence]) -> list[Silence]:
        found = []
        for silence in stored:
            try:
                found.append(compile_silence(silence))
            except MatcherError as exc:
                # Only a file written by another version could hold one; it matches nothing.
                self._failures.log(
                    logging.WARNING, silence.id, "silence %s is ignored: %s", silence.id, exc
                )
        return found

    def find(self, variables: Mapping[str, Any], now: float) -> Silence | None:
        """The first (oldest) silence active at ``now`` whose matchers all pass."""
        for silence in self._silences:
            if silence.stored.active(now) and matches_all(silence.matchers, variables):
                return silence
        return None
