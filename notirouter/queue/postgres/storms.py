"""Storm mode on PostgreSQL (README "Storm mode"), shared by every process.

Same table as SQLite (``sink_storms``). Each check that may write runs in one transaction
holding the sink's ``sink_storms`` row ``FOR UPDATE``: checks of one sink from several
processes take turns, so storm mode starts and ends once (and only that process logs and
emits it). Folding takes the due deliveries ``FOR UPDATE SKIP LOCKED``: a delivery a
dispatcher is claiming right now is left to it, and a claimed one is no longer due.
"""

from __future__ import annotations

import time

import asyncpg

from notirouter.queue.postgres.connection import unavailable
from notirouter.queue.postgres.schema import Connection
from notirouter.queue.protocol import sink_wake
from notirouter.queue.records import (
    DigestBuilder,
    FoldedItem,
    StormState,
    StormStep,
    caught_up,
)

_BACKLOG = "SELECT COUNT(*) FROM deliveries WHERE sink = $1 AND state = 'pending'"
# One round trip per claim of a rate-limited sink: its backlog and whether it storms.
_PEEK = (
    "SELECT (SELECT COUNT(*) FROM deliveries WHERE sink = $1 AND state = 'pending'),"
    " (SELECT active FROM sink_storms WHERE sink = $1)"
)
_ENSURE = "INSERT INTO sink_storms (sink, updated_at) VALUES ($1, $2) ON CONFLICT (sink) DO NOTHING"
_LOCK = "SELECT active, since, folded_at FROM sink_storms WHERE sink = $1 FOR UPDATE"
_START = (
    "UPDATE sink_storms SET active = TRUE, since = $2, storms = storms + 1, updated_at = $2"
    " WHERE sink = $1"
)
_FOLDABLE = (
    "SELECT id, event_id, route, message FROM deliveries WHERE sink = $1 AND state = 'pending'"
    " AND next_attempt_at <= $2 AND event_id NOT LIKE 'digest:%' AND event_id NOT LIKE 'storm:%'"
    " ORDER BY id FOR UPDATE SKIP LOCKED"
)
_INSERT_DIGEST = (
    "INSERT INTO deliveries (event_id, route, sink, message, created_at, next_attempt_at)"
    " VALUES ($1, $2, $3, $4, $5, $5) RETURNING id"
)
_FOLD = (
    "UPDATE deliveries SET state = 'folded', folded_into = $1, finished_at = $2"
    " WHERE state = 'pending' AND id = ANY($3::bigint[])"
)
_RECORD = (
    "UPDATE sink_storms SET active = $2, ended_at = CASE WHEN $2 THEN ended_at ELSE $3 END,"
    " folded = folded + $4, digests = digests + $5, folded_at = $6, updated_at = $3"
    " WHERE sink = $1"
)


async def storm_step(
    pool: asyncpg.Pool, sink: str, rate: float, after: float, build: DigestBuilder
) -> StormStep:
    """A read while the backlog is short and storm mode off; a locked transaction otherwise."""
    with unavailable("check storm mode"):
        async with pool.acquire() as connection:
            peek = await connection.fetchrow(_PEEK, sink)
            assert peek is not None
            backlog, active = int(peek[0]), bool(peek[1])
            if not active and backlog <= rate * after:
                return StormStep(False, backlog)
            async with connection.transaction():
                return await _step(connection, sink, rate, after, build)


async def _step(
    c: Connection, sink: str, rate: float, after: float, build: DigestBuilder
) -> StormStep:
    now = time.time()
    await c.execute(_ENSURE, sink, now)
    row = await c.fetchrow(_LOCK, sink)
    assert row is not None  # ensured just above, in this transaction
    active, since, folded_at = bool(row[0]), row[1], row[2]
    # Counted under the lock: another process's check just before this one is included.
    backlog = int(await c.fetchval(_BACKLOG, sink))
    started = False
    if not active and backlog > rate * after:
        await c.execute(_START, sink, now)
        active, since, started, folded_at = True, now, True, None
    if not active:
        return StormStep(False, backlog)
    by_route: dict[str, list[FoldedItem]] = {}
    for r in await c.fetch(_FOLDABLE, sink, now):
        by_route.setdefault(r[2], []).append(FoldedItem(r[0], r[1], r[3]))
    folded = digests = 0
    for route, items in by_route.items():
        if len(items) < 2:
            continue  # one message alone goes as it is
        digest = build(route, items)
        digest_id = await c.fetchval(
            _INSERT_DIGEST, digest.event_id, route, sink, digest.message_json, now
        )
        status = await c.execute(_FOLD, digest_id, now, [item.id for item in items])
        folded += int(status.split()[-1])
        digests += 1
    found = backlog
    # Counted again: deliveries routed since the first count may have been folded too.
    backlog = int(await c.fetchval(_BACKLOG, sink))
    if digests:
        folded_at = now
    ended = caught_up(backlog, folded_at, since, now, after)
    await c.execute(_RECORD, sink, not ended, now, folded, digests, folded_at)
    if digests:
        await c.execute("SELECT pg_notify('notirouter', $1)", sink_wake(sink))
    return StormStep(not ended, backlog, since, started, ended, folded, digests, found)


async def read_states(c: Connection) -> list[StormState]:
    """Every sink's stored storm state, by sink name (for ``status``)."""
    rows = await c.fetch(
        "SELECT sink, active, since, ended_at, storms, folded, digests FROM sink_storms"
        " WHERE storms > 0 ORDER BY sink"
    )
    return [StormState(r[0], bool(r[1]), r[2], r[3], int(r[4]), int(r[5]), int(r[6])) for r in rows]
