"""The SQLite queue as a :class:`~notirouter.queue.protocol.Queue`: one process, one file.

:class:`SqliteQueue` holds the events and jobs; this adds what the protocol asks beyond them:
schema versions, dead letters and housekeeping, and a sink's rate limit and pause, which on a
queue that only one process uses live in that process.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from notirouter.queue.gates import GatedMessage, StateKey, Values, Window
from notirouter.queue.local_gate import LocalGate
from notirouter.queue.protocol import (
    ChangeLedger,
    DeadLetterStore,
    Inspection,
    InteractionStore,
    MessageRefs,
    ProcessStates,
    SilenceStore,
    SinkGate,
)
from notirouter.queue.sqlite import dead_letters as sqlite_dead_letters
from notirouter.queue.sqlite import gates as sqlite_gates
from notirouter.queue.sqlite.changes import SqliteChanges
from notirouter.queue.sqlite.inspection import SqliteInspection
from notirouter.queue.sqlite.interactions import SqliteInteractions
from notirouter.queue.sqlite.message_refs import SqliteMessageRefs
from notirouter.queue.sqlite.migrations import current_version
from notirouter.queue.sqlite.process_states import SqliteProcessStates
from notirouter.queue.sqlite.queue import SqliteQueue
from notirouter.queue.sqlite.silences import SqliteSilences


class SqliteBackend(SqliteQueue):
    """The embedded default backend (``queue: {backend: sqlite}``)."""

    backend = "sqlite"

    async def schema_version(self) -> int:
        """The version recorded in the file."""
        version: int = await self.write(current_version)
        return version

    def dead_letters(self) -> DeadLetterStore:
        """The dead letters in this file."""
        return sqlite_dead_letters.DeadLetters(self)

    def message_refs(self) -> MessageRefs:
        """The conversations' references in this file."""
        return SqliteMessageRefs(self)

    def silences(self) -> SilenceStore:
        """The silences in this file."""
        return SqliteSilences(self)

    def process_states(self) -> ProcessStates:
        """The serving process's report of its in-memory state, in this file."""
        return SqliteProcessStates(self)

    def interactions(self) -> InteractionStore:
        """The chat actions queued in this file."""
        return SqliteInteractions(self)

    def changes(self) -> ChangeLedger:
        """Reconciliation watermarks, leases and changes seen, in this file."""
        return SqliteChanges(self)

    def sink_gate(self, sink: str, rate: float | None, burst: int) -> SinkGate:
        """This process's own bucket and pause: no other process uses the file."""
        return LocalGate(rate, burst)

    def inspection(self) -> Inspection:
        """Read-only operator queries on this file (``status``, ``trace``)."""
        return SqliteInspection(self)

    async def bury_orphans(self, sinks: Iterable[str]) -> dict[str, int]:
        """Dead-letter pending deliveries of sinks no longer configured."""
        return await sqlite_dead_letters.bury_orphans(self, sinks)

    async def prune(self, older_than: float) -> int:
        """Forget finished work older than ``older_than`` seconds."""
        return await sqlite_dead_letters.prune(self, older_than)

    async def gate_state(
        self, gated: Sequence[GatedMessage]
    ) -> tuple[dict[StateKey, Values | None], dict[StateKey, Window | None]]:
        """The stored ``notify_on`` values and throttle windows of ``gated``'s keys."""
        return await self.read(lambda c: sqlite_gates.read_state(c, gated, time.time()))

    async def prune_gates(self) -> int:
        """Forget expired ``notify_on`` values and ended windows."""
        return await sqlite_gates.prune(self)
