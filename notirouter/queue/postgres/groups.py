"""Groups on PostgreSQL: the messages grouped routes hold, and their timers, shared by every
process (README "Storm control").

Same tables as SQLite (``storm_groups``, ``storm_group_items``). Items are added in the
transaction that marks their event routed; adding upserts the group row first, so it waits for
a flush holding that row and never slips between a flush's read and its delete. A flush takes
due group rows ``FOR UPDATE SKIP LOCKED`` and empties them into delivery jobs in the same
transaction: several processes flush each group once, and a process killed mid-flush rolls
back, leaving the group due for the next one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import asyncpg

from notirouter.queue.postgres.connection import unavailable
from notirouter.queue.postgres.schema import Connection
from notirouter.queue.protocol import GROUPS_WAKE, sink_wake
from notirouter.queue.records import DueGroup, FlushedMessage, GroupedItem, NewGroupItem

# The latest config's sinks and limits win; the timer of a running group stays.
_UPSERT_GROUP = (
    "INSERT INTO storm_groups (kind, route, group_key, sinks, interval_seconds, max_items,"
    " created_at, next_flush_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    " ON CONFLICT (kind, route, group_key) DO UPDATE SET sinks = EXCLUDED.sinks,"
    " interval_seconds = EXCLUDED.interval_seconds, max_items = EXCLUDED.max_items"
    " RETURNING (xmax = 0)"
)
_INSERT_ITEM = (
    "INSERT INTO storm_group_items (kind, route, group_key, event_id, message, severity, link,"
    " added_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING"
)
_CLAIM_DUE = (
    "SELECT kind, route, group_key, sinks, max_items, flushes FROM storm_groups"
    " WHERE next_flush_at <= $1 ORDER BY next_flush_at LIMIT $2 FOR UPDATE SKIP LOCKED"
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
_DELETE_GROUP = "DELETE FROM storm_groups WHERE kind = $1 AND route = $2 AND group_key = $3"
_DELETE_ITEMS = (
    "DELETE FROM storm_group_items WHERE kind = $1 AND route = $2 AND group_key = $3 AND id <= $4"
)
_RESCHEDULE = (
    "UPDATE storm_groups SET flushes = flushes + 1, next_flush_at = $4 + interval_seconds"
    " WHERE kind = $1 AND route = $2 AND group_key = $3"
)


async def add_items(connection: Connection, event_id: str, items: Iterable[NewGroupItem]) -> None:
    """Hold ``items`` of one event in their groups (inside its routing transaction)."""
    now = time.time()
    # One order for every process: two events of the same groups never wait on each other.
    for item in sorted(items, key=lambda i: (i.kind, i.route, i.group_key)):
        where = (item.kind, item.route, item.group_key)
        created = await connection.fetchval(
            _UPSERT_GROUP,
            *where,
            list(item.sinks),
            item.interval,
            item.max_items,
            now,
            now + item.wait,
        )
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
    """Flush up to ``limit`` due groups in one transaction; how many, and the sinks to wake."""
    woken: set[str] = set()
    with unavailable("flush groups"):
        async with pool.acquire() as connection, connection.transaction():
            now = time.time()
            due = await connection.fetch(_CLAIM_DUE, now, limit)
            for row in due:
                group = await _due_group(connection, row)
                where = (group.kind, group.route, group.group_key)
                if not group.items:
                    await connection.execute(_DELETE_GROUP, *where)
                    continue
                flushed = build(group)
                await connection.execute(
                    _INSERT_DELIVERIES,
                    flushed.event_id,
                    group.route,
                    list(group.sinks),
                    flushed.message_json,
                    now,
                )
                await connection.execute(
                    _DELETE_ITEMS,
                    *where,
                    group.items[-1].id,
                )
                await connection.execute(
                    _RESCHEDULE,
                    *where,
                    now,
                )
                woken.update(sink_wake(sink) for sink in group.sinks)
            if woken:
                await connection.execute(
                    "SELECT pg_notify('notirouter', k) FROM unnest($1::text[]) AS k",
                    sorted(woken),
                )
    return len(due), woken


async def next_group_due(pool: asyncpg.Pool) -> float | None:
    """When the earliest group falls due."""
    with unavailable("read the next due group"):
        due = await pool.fetchval("SELECT MIN(next_flush_at) FROM storm_groups")
    return None if due is None else float(due)
