"""Groups on PostgreSQL: the messages grouped routes hold, and their timers, shared by every
process (README "Storm control").

Same tables as SQLite (``storm_groups``, ``storm_group_items``). The row locks are chosen so
that a storm never starves the flush and no item is ever orphaned:

- routing holds its group row ``FOR KEY SHARE`` (routers never wait for each other, nor for
  a flush) from before it adds its item until it commits;
- a flush takes one due group ``FOR NO KEY UPDATE SKIP LOCKED``: compatible with routing,
  exclusive among flushers, so several processes flush each group once; it removes exactly the
  items it read (one committed meanwhile stays for the next flush);
- only forgetting an empty group needs the row ``FOR UPDATE``: it waits for routing in flight,
  then looks again; routing that finds its group forgotten creates it anew.

Each group is flushed in its own transaction, so a flush holds one row lock at a time and
cannot deadlock with routing. A process killed mid-flush rolls back: the group stays due.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import asyncpg

from notirouter.queue.postgres.connection import unavailable
from notirouter.queue.postgres.schema import Connection
from notirouter.queue.protocol import GROUPS_WAKE, QueueUnavailable, sink_wake
from notirouter.queue.records import DueGroup, FlushedMessage, GroupedItem, NewGroupItem

_CREATE_GROUP = (
    "INSERT INTO storm_groups (kind, route, group_key, sinks, interval_seconds, max_items,"
    " created_at, next_flush_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    " ON CONFLICT (kind, route, group_key) DO NOTHING RETURNING 1"
)
_HOLD_GROUP = (
    "SELECT 1 FROM storm_groups WHERE kind = $1 AND route = $2 AND group_key = $3 FOR KEY SHARE"
)
# The latest config's sinks and limits win (rarely a write: only when they changed).
_UPDATE_SETTINGS = (
    "UPDATE storm_groups SET sinks = $4, interval_seconds = $5, max_items = $6"
    " WHERE kind = $1 AND route = $2 AND group_key = $3"
    " AND (sinks <> $4 OR interval_seconds <> $5 OR max_items <> $6)"
)
_INSERT_ITEM = (
    "INSERT INTO storm_group_items (kind, route, group_key, event_id, message, severity, link,"
    " added_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING"
)
_CLAIM_ONE = (
    "SELECT kind, route, group_key, sinks, max_items, flushes FROM storm_groups"
    " WHERE next_flush_at <= $1 ORDER BY next_flush_at LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED"
)
# Messages of the listed items only: a group of 10,000 costs 10,000 small rows, not bodies.
_ITEMS = (
    "SELECT id, event_id, severity, link, CASE WHEN n <= $4 THEN message END FROM"
    " (SELECT *, ROW_NUMBER() OVER (ORDER BY id) AS n FROM storm_group_items"
    "  WHERE kind = $1 AND route = $2 AND group_key = $3) AS held ORDER BY id"
)
_INSERT_DELIVERIES = (
    "INSERT INTO deliveries (event_id, route, sink, message, created_at, next_attempt_at)"
    " SELECT $1, $2, s, $4, $5, $5 FROM unnest($3::text[]) AS s ON CONFLICT DO NOTHING"
)
_LOCK_TO_FORGET = (
    "SELECT 1 FROM storm_groups WHERE kind = $1 AND route = $2 AND group_key = $3 FOR UPDATE"
)
_HOLDS_ITEMS = (
    "SELECT EXISTS (SELECT 1 FROM storm_group_items"
    " WHERE kind = $1 AND route = $2 AND group_key = $3)"
)
_DELETE_GROUP = "DELETE FROM storm_groups WHERE kind = $1 AND route = $2 AND group_key = $3"
_DELETE_ITEMS = "DELETE FROM storm_group_items WHERE id = ANY($1::bigint[])"
_RESCHEDULE = (
    "UPDATE storm_groups SET flushes = flushes + 1, next_flush_at = $4 + interval_seconds"
    " WHERE kind = $1 AND route = $2 AND group_key = $3"
)
HOLD_TRIES = 5


async def add_items(connection: Connection, event_id: str, items: Iterable[NewGroupItem]) -> None:
    """Hold ``items`` of one event in their groups (inside its routing transaction)."""
    now = time.time()
    for item in sorted(items, key=lambda i: (i.kind, i.route, i.group_key)):
        where = (item.kind, item.route, item.group_key)
        settings = (list(item.sinks), item.interval, item.max_items)
        for _ in range(HOLD_TRIES):
            created = await connection.fetchval(
                _CREATE_GROUP, *where, *settings, now, now + item.wait
            )
            # A row this transaction created, or one it holds: not forgotten before commit.
            if created or await connection.fetchval(_HOLD_GROUP, *where):
                break
        else:
            raise QueueUnavailable("PostgreSQL: a group kept being forgotten while routing")
        if not created:
            await connection.execute(_UPDATE_SETTINGS, *where, *settings)
        await connection.execute(
            _INSERT_ITEM, *where, event_id, item.message_json, item.severity, item.link, now
        )
        if created:
            # Delivered at commit: every process's flusher learns the new timer.
            await connection.execute("SELECT pg_notify('notirouter', $1)", GROUPS_WAKE)


async def _due_group(connection: Connection, row: asyncpg.Record) -> DueGroup:
    kind, route, key, sinks, max_items, flushes = tuple(row)
    rows = await connection.fetch(_ITEMS, kind, route, key, max_items)
    items = [GroupedItem(r[0], r[1], r[2], r[3], r[4]) for r in rows]
    return DueGroup(kind, route, key, tuple(sinks), max_items, flushes, items)


async def flush_groups(
    pool: asyncpg.Pool, limit: int, build: Callable[[DueGroup], FlushedMessage]
) -> tuple[int, set[str]]:
    """Flush up to ``limit`` due groups, one transaction each; how many, and sinks to wake."""
    woken: set[str] = set()
    handled = 0
    with unavailable("flush groups"):
        while handled < limit:
            async with pool.acquire() as connection, connection.transaction():
                sinks = await _flush_one(connection, build)
            if sinks is None:
                break
            handled += 1
            woken |= sinks
    return handled, woken


async def _flush_one(
    connection: Connection, build: Callable[[DueGroup], FlushedMessage]
) -> set[str] | None:
    """Flush the earliest due group no other flusher holds (``None``: none is due)."""
    now = time.time()
    row = await connection.fetchrow(_CLAIM_ONE, now)
    if row is None:
        return None
    group = await _due_group(connection, row)
    where = (group.kind, group.route, group.group_key)
    if not group.items:
        # Nothing arrived for a whole interval: forget it, unless routing just added an item.
        await connection.fetchval(_LOCK_TO_FORGET, *where)
        if not await connection.fetchval(_HOLDS_ITEMS, *where):
            await connection.execute(_DELETE_GROUP, *where)
        return set()
    flushed = build(group)
    sinks = list(group.sinks)
    await connection.execute(
        _INSERT_DELIVERIES, flushed.event_id, group.route, sinks, flushed.message_json, now
    )
    await connection.execute(_DELETE_ITEMS, [item.id for item in group.items])
    await connection.execute(_RESCHEDULE, *where, now)
    woken = {sink_wake(sink) for sink in sinks}
    await connection.execute(
        "SELECT pg_notify('notirouter', k) FROM unnest($1::text[]) AS k", sorted(woken)
    )
    return woken


async def next_group_due(pool: asyncpg.Pool) -> float | None:
    """When the earliest group falls due."""
    with unavailable("read the next due group"):
        due = await pool.fetchval("SELECT MIN(next_flush_at) FROM storm_groups")
    return None if due is None else float(due)
