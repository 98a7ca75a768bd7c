"""Storm mode on SQLite (README "Storm mode"): a sink's storm state, and folding its backlog.

``sink_storms`` holds one row per sink that ever stormed: whether storm mode is on, since
when, and the totals ``status`` shows. A check is a read while the backlog is short; only
starting, folding and ending write, each in one transaction with the digests it creates, so
a crash leaves every delivery either pending or folded into a digest that exists.
"""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING

from notirouter.queue.protocol import sink_wake
from notirouter.queue.records import (
    DigestBuilder,
    FoldedItem,
    StormState,
    StormStep,
    caught_up,
)

if TYPE_CHECKING:
    from notirouter.queue.sqlite.queue import SqliteQueue

_BACKLOG = "SELECT COUNT(*) FROM deliveries WHERE sink = ? AND state = 'pending'"
_STATE = "SELECT active, since, folded_at FROM sink_storms WHERE sink = ?"
# Due (so not in flight under a lease), and not already a digest: digests are never refolded.
_FOLDABLE = (
    "SELECT id, event_id, route, message FROM deliveries WHERE sink = ? AND state = 'pending'"
    " AND next_attempt_at <= ? AND event_id NOT LIKE 'digest:%' AND event_id NOT LIKE 'storm:%'"
    " ORDER BY id"
)


def _read(c: sqlite3.Connection, sink: str) -> tuple[int, bool, float | None, float | None]:
    backlog = int(c.execute(_BACKLOG, (sink,)).fetchone()[0])
    row = c.execute(_STATE, (sink,)).fetchone()
    return backlog, bool(row and row[0]), (row[1] if row else None), (row[2] if row else None)


def step(
    c: sqlite3.Connection, sink: str, rate: float, after: float, build: DigestBuilder
) -> StormStep:
    """One check of ``sink`` inside the writer's transaction (see ``StormStore.storm_step``)."""
    now = time.time()
    backlog, active, since, folded_at = _read(c, sink)
    started = False
    if not active and backlog > rate * after:
        c.execute(
            "INSERT INTO sink_storms (sink, active, since, storms, updated_at)"
            " VALUES (?, 1, ?, 1, ?) ON CONFLICT (sink) DO UPDATE SET active = 1,"
            " since = excluded.since, storms = storms + 1, updated_at = excluded.updated_at",
            (sink, now, now),
        )
        active, since, started, folded_at = True, now, True, None
    if not active:
        return StormStep(False, backlog)
    folded = digests = 0
    by_route: dict[str, list[FoldedItem]] = {}
    for delivery_id, event_id, route, message in c.execute(_FOLDABLE, (sink, now)).fetchall():
        by_route.setdefault(route, []).append(FoldedItem(delivery_id, event_id, message))
    for route, items in by_route.items():
        if len(items) < 2:
            continue  # one message alone goes as it is
        digest = build(route, items)
        cursor = c.execute(
            "INSERT INTO deliveries (event_id, route, sink, message, created_at,"
            " next_attempt_at) VALUES (?, ?, ?, ?, ?, ?)",
            (digest.event_id, route, sink, digest.message_json, now, now),
        )
        ids = [item.id for item in items]
        marks = ",".join("?" * len(ids))
        folded += c.execute(
            "UPDATE deliveries SET state = 'folded', folded_into = ?, finished_at = ?"  # noqa: S608
            f" WHERE state = 'pending' AND id IN ({marks})",
            (cursor.lastrowid, now, *ids),
        ).rowcount
        digests += 1
    found = backlog
    backlog += digests - folded  # one writer: nothing else changed the sink's rows meanwhile
    if digests:
        folded_at = now
    ended = caught_up(backlog, folded_at, since, now, after)
    c.execute(
        "UPDATE sink_storms SET active = ?, ended_at = CASE WHEN ? THEN ? ELSE ended_at END,"
        " folded = folded + ?, digests = digests + ?, folded_at = ?, updated_at = ?"
        " WHERE sink = ?",
        (0 if ended else 1, ended, now, folded, digests, folded_at, now, sink),
    )
    return StormStep(not ended, backlog, since, started, ended, folded, digests, found)


async def storm_step(
    queue: SqliteQueue, sink: str, rate: float, after: float, build: DigestBuilder
) -> StormStep:
    """A read while the backlog is short and storm mode off; a write transaction otherwise."""
    backlog, active, _, _ = await queue.read(lambda c: _read(c, sink))
    if not active and backlog <= rate * after:
        return StormStep(False, backlog)
    result: StormStep = await queue.write(lambda c: step(c, sink, rate, after, build))
    if result.digests:
        queue.wake({sink_wake(sink)})
    return result


def read_states(c: sqlite3.Connection) -> list[StormState]:
    """Every sink's stored storm state, by sink name (for ``status``)."""
    rows = c.execute(
        "SELECT sink, active, since, ended_at, storms, folded, digests FROM sink_storms"
        " ORDER BY sink"
    ).fetchall()
    return [StormState(r[0], bool(r[1]), r[2], r[3], r[4], r[5], r[6]) for r in rows]
