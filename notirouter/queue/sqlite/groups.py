"""Groups on SQLite: the messages grouped routes hold, and their timers (README "Storm control").

``storm_groups`` has one row per (kind, route, group key) with the time it is next due;
``storm_group_items`` the messages it holds. Items are added in the transaction that marks their
event routed, and a flush empties a group into delivery jobs in one transaction, so a crash
loses nothing and repeats nothing. The single writer is the lease: no two flushes of one file
ever run at once, and a restarted process finds the timers where they were.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from notirouter.queue.protocol import GROUPS_WAKE, sink_wake
from notirouter.queue.records import DueGroup, FlushedMessage, GroupedItem, NewGroupItem

if TYPE_CHECKING:
    from notirouter.queue.sqlite.queue import SqliteQueue


def add_items(c: sqlite3.Connection, event_id: str, items: Iterable[NewGroupItem]) -> bool:
    """Hold ``items`` of one event in their groups (inside its routing transaction).

    Returns whether a group was created (the flusher must learn its new timer).
    """
    now = time.time()
    created = False
    for item in items:
        # The latest config's sinks and limits win; the timer of a running group stays.
        updated = c.execute(
            "UPDATE storm_groups SET sinks = ?, interval_seconds = ?, max_items = ?"
            " WHERE kind = ? AND route = ? AND group_key = ?",
            (
                json.dumps(item.sinks),
                item.interval,
                item.max_items,
                item.kind,
                item.route,
                item.group_key,
            ),
        ).rowcount
        if not updated:
            c.execute(
                "INSERT INTO storm_groups (kind, route, group_key, sinks, interval_seconds,"
                " max_items, created_at, next_flush_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    item.kind,
                    item.route,
                    item.group_key,
                    json.dumps(item.sinks),
                    item.interval,
                    item.max_items,
                    now,
                    now + item.wait,
                ),
            )
            created = True
        c.execute(
            "INSERT OR IGNORE INTO storm_group_items (kind, route, group_key, event_id, message,"
            " severity, link, added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                item.kind,
                item.route,
                item.group_key,
                event_id,
                item.message_json,
                item.severity,
                item.link,
                now,
            ),
        )
    return created


def _due_group(c: sqlite3.Connection, row: tuple[str, str, str, str, int, int]) -> DueGroup:
    kind, route, key, sinks, max_items, flushes = row
    where = "WHERE kind = ? AND route = ? AND group_key = ?"
    # Messages of the listed items only: a group of 10,000 costs 10,000 small rows, not bodies.
    listed = c.execute(
        f"SELECT id, event_id, severity, link, message FROM storm_group_items {where}"  # noqa: S608
        " ORDER BY id LIMIT ?",
        (kind, route, key, max_items),
    ).fetchall()
    items = [GroupedItem(r[0], r[1], r[2], r[3], r[4]) for r in listed]
    if len(listed) == max_items:
        rest = c.execute(
            f"SELECT id, event_id, severity, link FROM storm_group_items {where}"  # noqa: S608
            " AND id > ? ORDER BY id",
            (kind, route, key, listed[-1][0]),
        ).fetchall()
        items.extend(GroupedItem(r[0], r[1], r[2], r[3], None) for r in rest)
    return DueGroup(kind, route, key, tuple(json.loads(sinks)), max_items, flushes, items)


async def flush_groups(
    queue: SqliteQueue, limit: int, build: Callable[[DueGroup], FlushedMessage]
) -> int:
    """Flush up to ``limit`` due groups in one transaction (see ``GroupStore``)."""
    woken: set[str] = set()

    def operation(c: sqlite3.Connection) -> int:
        now = time.time()
        due = c.execute(
            "SELECT kind, route, group_key, sinks, max_items, flushes FROM storm_groups"
            " WHERE next_flush_at <= ? ORDER BY next_flush_at LIMIT ?",
            (now, limit),
        ).fetchall()
        for row in due:
            group = _due_group(c, row)
            where = (group.kind, group.route, group.group_key)
            if not group.items:
                c.execute(
                    "DELETE FROM storm_groups WHERE kind = ? AND route = ? AND group_key = ?",
                    where,
                )
                continue
            flushed = build(group)
            c.executemany(
                "INSERT OR IGNORE INTO deliveries (event_id, route, sink, message, created_at,"
                " next_attempt_at) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (flushed.event_id, group.route, sink, flushed.message_json, now, now)
                    for sink in group.sinks
                ],
            )
            woken.update(sink_wake(sink) for sink in group.sinks)
            c.execute(
                "DELETE FROM storm_group_items WHERE kind = ? AND route = ? AND group_key = ?"
                " AND id <= ?",
                (*where, group.items[-1].id),
            )
            c.execute(
                "UPDATE storm_groups SET flushes = flushes + 1,"
                " next_flush_at = ? + interval_seconds"
                " WHERE kind = ? AND route = ? AND group_key = ?",
                (now, *where),
            )
        return len(due)

    flushed: int = await queue.write(operation)
    queue.wake(woken)
    return flushed


async def next_group_due(queue: SqliteQueue) -> float | None:
    """When the earliest group falls due."""
    row = await queue.read(
        lambda c: c.execute("SELECT MIN(next_flush_at) FROM storm_groups").fetchone()
    )
    return None if row is None or row[0] is None else float(row[0])


__all__ = ["GROUPS_WAKE", "add_items", "flush_groups", "next_group_due"]
