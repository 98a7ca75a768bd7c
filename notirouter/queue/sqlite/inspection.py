"""``status`` and ``trace`` on the SQLite queue: plain reads on the read-only connection.

In WAL mode a reader never holds up the writer, so these may run while ``serve`` does. Each
question is answered inside one read transaction, so its parts agree with each other.
"""

from __future__ import annotations

import sqlite3
import time

from notirouter.queue.inspection_records import (
    EventStory,
    OldestDue,
    QueueSnapshot,
    SinkBacklog,
    story_from_rows,
)
from notirouter.queue.sqlite.queue import SqliteQueue
from notirouter.queue.sqlite.storms import read_states


class SqliteInspection:
    """The :class:`~notirouter.queue.protocol.Inspection` of one SQLite file."""

    def __init__(self, queue: SqliteQueue) -> None:
        self.queue = queue

    async def snapshot(self) -> QueueSnapshot:
        """Counts, backlog per sink, pauses, last errors and the oldest due delivery."""
        return await self.queue.read(_snapshot)

    async def event_story(self, event_id: str) -> EventStory | None:
        """The event, what routing decided, its deliveries and every attempt."""
        return await self.queue.read(lambda c: _story(c, event_id))

    async def events_mentioning(self, text: str, limit: int) -> list[tuple[str, bytes]]:
        """Events whose raw body contains ``text`` (a byte search: no pattern syntax)."""
        rows = await self.queue.read(
            lambda c: c.execute(
                "SELECT id, body FROM events WHERE instr(body, ?) > 0 ORDER BY received_at LIMIT ?",
                (text.encode(), limit),
            ).fetchall()
        )
        return [(row[0], bytes(row[1])) for row in rows]


def _snapshot(c: sqlite3.Connection) -> QueueSnapshot:
    c.execute("BEGIN")
    try:
        now = time.time()
        events = dict(c.execute("SELECT state, COUNT(*) FROM events GROUP BY state").fetchall())
        oldest_event = c.execute(
            "SELECT MIN(received_at) FROM events WHERE state = 'pending'"
        ).fetchone()[0]
        states: dict[str, dict[str, int]] = {}
        for sink, state, count in c.execute(
            "SELECT sink, state, COUNT(*) FROM deliveries GROUP BY sink, state"
        ):
            states.setdefault(sink, {})[state] = count
        due = {
            sink: (count, first)
            for sink, count, first in c.execute(
                "SELECT sink, SUM(next_attempt_at <= ?), MIN(next_attempt_at) FROM deliveries"
                " WHERE state = 'pending' GROUP BY sink",
                (now,),
            )
        }
        paused = dict(
            c.execute(
                "SELECT sink, MAX(paused_until) FROM delivery_attempts"
                " WHERE outcome != 'delivered' AND paused_until > ? GROUP BY sink",
                (now,),
            ).fetchall()
        )
        failures = {
            row[0]: row[1:]
            for row in c.execute(
                "SELECT sink, at, outcome, detail FROM delivery_attempts WHERE id IN"
                " (SELECT MAX(id) FROM delivery_attempts WHERE outcome != 'delivered'"
                " GROUP BY sink)"
            )
        }
        oldest = c.execute(
            "SELECT id, event_id, sink, route, created_at, next_attempt_at, attempts"
            " FROM deliveries WHERE state = 'pending' AND next_attempt_at <= ?"
            " ORDER BY created_at LIMIT 1",
            (now,),
        ).fetchone()
        storms = read_states(c)
    finally:
        c.execute("ROLLBACK")
    return QueueSnapshot(
        taken_at=now,
        events=events,
        deliveries=_totals(states),
        sinks=[
            SinkBacklog(
                sink=sink,
                states=states.get(sink, {}),
                due=int(due.get(sink, (0, None))[0] or 0),
                next_due_at=due.get(sink, (0, None))[1],
                paused_until=paused.get(sink),
                last_error=failures[sink][2] if sink in failures else None,
                last_error_at=failures[sink][0] if sink in failures else None,
                last_outcome=failures[sink][1] if sink in failures else None,
            )
            for sink in sorted(set(states) | set(failures))
        ],
        oldest_due=None if oldest is None else OldestDue(*oldest),
        oldest_pending_event_at=oldest_event,
        storms=storms,
    )


def _totals(states: dict[str, dict[str, int]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for per_state in states.values():
        for state, count in per_state.items():
            totals[state] = totals.get(state, 0) + count
    return totals


def _story(c: sqlite3.Connection, event_id: str) -> EventStory | None:
    c.execute("BEGIN")
    try:
        event = c.execute(
            "SELECT id, hook, source, dedupe_key, received_at, state, attempts, next_attempt_at,"
            " last_error, routing, body FROM events WHERE id = ?",
            (event_id,),
        ).fetchone()
        if event is None:
            return None
        deliveries = c.execute(
            "SELECT id, route, sink, state, attempts, created_at, next_attempt_at, finished_at,"
            " last_error, folded_into,"
            " (SELECT f.state FROM deliveries f WHERE f.id = deliveries.folded_into)"
            " FROM deliveries WHERE event_id = ? ORDER BY id",
            (event_id,),
        ).fetchall()
        attempts = c.execute(
            "SELECT a.delivery_id, a.attempt, a.at, a.outcome, a.status, a.detail,"
            " a.next_attempt_at, a.paused_until FROM delivery_attempts a"
            " JOIN deliveries d ON d.id = a.delivery_id WHERE d.event_id = ? ORDER BY a.id",
            (event_id,),
        ).fetchall()
    finally:
        c.execute("ROLLBACK")
    return story_from_rows(event, deliveries, attempts)
