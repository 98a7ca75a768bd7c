"""``status`` and ``trace`` on the PostgreSQL queue: plain reads, one snapshot each.

Each question runs in one read-only ``REPEATABLE READ`` transaction, so its parts agree;
readers never wait for writers. A sink's pause is the later of what its attempts recorded
and the shared gate row every process honours.
"""

from __future__ import annotations

import time

import asyncpg

from notirouter.queue.inspection_records import (
    EventStory,
    OldestDue,
    QueueSnapshot,
    SinkBacklog,
    story_from_rows,
)
from notirouter.queue.postgres.connection import unavailable
from notirouter.queue.postgres.storms import read_states


class PostgresInspection:
    """The :class:`~notirouter.queue.protocol.Inspection` of one PostgreSQL queue."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def snapshot(self) -> QueueSnapshot:
        """Counts, backlog per sink, pauses, last errors and the oldest due delivery."""
        now = time.time()
        with unavailable("read the queue status"):
            async with (
                self.pool.acquire() as c,
                c.transaction(isolation="repeatable_read", readonly=True),
            ):
                events = await c.fetch("SELECT state, COUNT(*) FROM events GROUP BY state")
                oldest_event = await c.fetchval(
                    "SELECT MIN(received_at) FROM events WHERE state = 'pending'"
                )
                per_state = await c.fetch(
                    "SELECT sink, state, COUNT(*) FROM deliveries GROUP BY sink, state"
                )
                due_rows = await c.fetch(
                    "SELECT sink, COUNT(*) FILTER (WHERE next_attempt_at <= $1),"
                    " MIN(next_attempt_at) FROM deliveries WHERE state = 'pending' GROUP BY sink",
                    now,
                )
                paused_rows = await c.fetch(
                    "SELECT sink, MAX(until) FROM (SELECT sink, paused_until AS until"
                    " FROM delivery_attempts WHERE outcome <> 'delivered' AND paused_until > $1"
                    " UNION ALL SELECT sink, paused_until FROM sink_gates"
                    " WHERE paused_until > $1) p GROUP BY sink",
                    now,
                )
                failure_rows = await c.fetch(
                    "SELECT sink, at, outcome, detail FROM delivery_attempts WHERE id IN"
                    " (SELECT MAX(id) FROM delivery_attempts WHERE outcome <> 'delivered'"
                    " GROUP BY sink)"
                )
                oldest = await c.fetchrow(
                    "SELECT id, event_id, sink, route, created_at, next_attempt_at, attempts"
                    " FROM deliveries WHERE state = 'pending' AND next_attempt_at <= $1"
                    " ORDER BY created_at LIMIT 1",
                    now,
                )
                storms = await read_states(c)
        states: dict[str, dict[str, int]] = {}
        for row in per_state:
            states.setdefault(row[0], {})[row[1]] = int(row[2])
        due = {row[0]: (int(row[1]), row[2]) for row in due_rows}
        paused = {row[0]: float(row[1]) for row in paused_rows}
        failures = {row[0]: (row[1], row[2], row[3]) for row in failure_rows}
        totals: dict[str, int] = {}
        for counts in states.values():
            for state, count in counts.items():
                totals[state] = totals.get(state, 0) + count
        return QueueSnapshot(
            taken_at=now,
            events={row[0]: int(row[1]) for row in events},
            deliveries=totals,
            sinks=[
                SinkBacklog(
                    sink=sink,
                    states=states.get(sink, {}),
                    due=due.get(sink, (0, None))[0],
                    next_due_at=due.get(sink, (0, None))[1],
                    paused_until=paused.get(sink),
                    last_error=failures[sink][2] if sink in failures else None,
                    last_error_at=failures[sink][0] if sink in failures else None,
                    last_outcome=failures[sink][1] if sink in failures else None,
                )
                for sink in sorted(set(states) | set(failures) | set(paused))
            ],
            oldest_due=None if oldest is None else OldestDue(*oldest),
            oldest_pending_event_at=oldest_event,
            storms=storms,
        )

    async def event_story(self, event_id: str) -> EventStory | None:
        """The event, what routing decided, its deliveries and every attempt."""
        with unavailable("read the event"):
            async with (
                self.pool.acquire() as c,
                c.transaction(isolation="repeatable_read", readonly=True),
            ):
                event = await c.fetchrow(
                    "SELECT id, hook, source, dedupe_key, received_at, state, attempts,"
                    " next_attempt_at, last_error, routing, body FROM events WHERE id = $1",
                    event_id,
                )
                if event is None:
                    return None
                deliveries = await c.fetch(
                    "SELECT id, route, sink, state, attempts, created_at, next_attempt_at,"
                    " finished_at, last_error, folded_into,"
                    " (SELECT f.state FROM deliveries f WHERE f.id = d.folded_into)"
                    " FROM deliveries d WHERE event_id = $1 ORDER BY id",
                    event_id,
                )
                attempts = await c.fetch(
                    "SELECT a.delivery_id, a.attempt, a.at, a.outcome, a.status, a.detail,"
                    " a.next_attempt_at, a.paused_until FROM delivery_attempts a"
                    " JOIN deliveries d ON d.id = a.delivery_id WHERE d.event_id = $1"
                    " ORDER BY a.id",
                    event_id,
                )
        return story_from_rows(
            tuple(event), [tuple(d) for d in deliveries], [tuple(a) for a in attempts]
        )

    async def events_mentioning(self, text: str, limit: int) -> list[tuple[str, bytes]]:
        """Events whose raw body contains ``text`` (a byte search: no pattern syntax)."""
        with unavailable("search the events"):
            rows = await self.pool.fetch(
                "SELECT id, body FROM events WHERE position($1::bytea IN body) > 0"
                " ORDER BY received_at LIMIT $2",
                text.encode(),
                limit,
            )
        return [(row[0], bytes(row[1])) for row in rows]
