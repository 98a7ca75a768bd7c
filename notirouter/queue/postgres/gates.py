"""Gates on PostgreSQL: ``notify_on`` values and throttle windows shared by every process.

Decided inside the routing transaction (``complete_event``): each row an event needs is taken
``FOR UPDATE`` (created first if missing, so two processes racing on a new key still queue up
on one row), in sorted order so two events needing the same rows cannot deadlock. The second
update of an alert therefore waits for the first to commit and decides on what it stored; a
process killed between the decision and the commit rolls back both (:mod:`notirouter.queue.gates`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import asyncpg

from notirouter.queue.gates import (
    GatedMessage,
    GateOutcome,
    StateKey,
    Values,
    Window,
    apply_gates,
    notify_keys,
    stored_values,
    throttle_keys,
)
from notirouter.queue.postgres.connection import unavailable
from notirouter.queue.postgres.schema import Connection
from notirouter.queue.retention import PRUNE_BATCH_ROWS, prune_in_batches

# A placeholder (already expired) that only exists to be locked; replaced before commit.
_NEW_NOTIFY = (
    "INSERT INTO notify_state (route, notify_key, notified, seen_at, expires_at)"
    " VALUES ($1, $2, NULL, $3, 0) ON CONFLICT DO NOTHING"
)
_LOCK_NOTIFY = (
    "SELECT notified, expires_at FROM notify_state WHERE route = $1 AND notify_key = $2 FOR UPDATE"
)
_NEW_WINDOW = (
    "INSERT INTO throttle_windows (route, throttle_key, window_start, window_end, count)"
    " VALUES ($1, $2, 0, 0, 0) ON CONFLICT DO NOTHING"
)
_LOCK_WINDOW = (
    "SELECT window_start, window_end, count FROM throttle_windows"
    " WHERE route = $1 AND throttle_key = $2 FOR UPDATE"
)
_SEEN = "UPDATE notify_state SET seen_at = $3, expires_at = $4 WHERE route = $1 AND notify_key = $2"
_NOTIFIED = (
    "UPDATE notify_state SET notified = $3, seen_at = $4, expires_at = $5"
    " WHERE route = $1 AND notify_key = $2"
)
_COUNTED = (
    "UPDATE throttle_windows SET window_start = $3, window_end = $4, count = $5"
    " WHERE route = $1 AND throttle_key = $2"
)
# Rows routing holds are skipped, not waited for (and cannot deadlock with it): next time.
_PRUNE_NOTIFY = (
    "DELETE FROM notify_state WHERE (route, notify_key) IN (SELECT route, notify_key"
    " FROM notify_state WHERE expires_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)"
)
_PRUNE_WINDOWS = (
    "DELETE FROM throttle_windows WHERE (route, throttle_key) IN (SELECT route, throttle_key"
    " FROM throttle_windows WHERE window_end < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)"
)


async def decide(connection: Connection, gated: Sequence[GatedMessage]) -> GateOutcome:
    """Decide ``gated`` on the locked state and write the new state (in the transaction)."""
    now = time.time()
    notified: dict[StateKey, Values | None] = {}
    for route, key in notify_keys(gated):
        await connection.execute(_NEW_NOTIFY, route, key, now)
        row = await connection.fetchrow(_LOCK_NOTIFY, route, key)
        fresh = row is not None and row["expires_at"] >= now
        notified[(route, key)] = stored_values(row["notified"]) if row and fresh else None
    windows: dict[StateKey, Window | None] = {}
    for route, key in throttle_keys(gated):
        await connection.execute(_NEW_WINDOW, route, key)
        row = await connection.fetchrow(_LOCK_WINDOW, route, key)
        windows[(route, key)] = None if row is None else (row[0], row[1], row[2])
    outcome = apply_gates(gated, notified, windows, now)
    for note in outcome.notified:
        if note.values_json is None:
            await connection.execute(_SEEN, note.route, note.key, now, note.expires_at)
        else:
            await connection.execute(
                _NOTIFIED, note.route, note.key, note.values_json, now, note.expires_at
            )
    for counted in outcome.windows:
        window = counted.window
        await connection.execute(
            _COUNTED, counted.route, counted.key, window.start, window.end, window.count
        )
    return outcome


async def read_state(
    pool: asyncpg.Pool, gated: Sequence[GatedMessage]
) -> tuple[dict[StateKey, Values | None], dict[StateKey, Window | None]]:
    """The stored state of the keys ``gated`` names, without locking (for a dry run)."""
    now = time.time()
    notified: dict[StateKey, Values | None] = {}
    windows: dict[StateKey, Window | None] = {}
    with unavailable("read the notify_on and throttle state"):
        for route, key in notify_keys(gated):
            row = await pool.fetchrow(
                "SELECT notified FROM notify_state WHERE route = $1 AND notify_key = $2"
                " AND expires_at >= $3",
                route,
                key,
                now,
            )
            notified[(route, key)] = None if row is None else stored_values(row[0])
        for route, key in throttle_keys(gated):
            row = await pool.fetchrow(
                "SELECT window_start, window_end, count FROM throttle_windows"
                " WHERE route = $1 AND throttle_key = $2",
                route,
                key,
            )
            windows[(route, key)] = None if row is None else (row[0], row[1], row[2])
    return notified, windows


async def prune(pool: asyncpg.Pool, *, rows: int = PRUNE_BATCH_ROWS) -> int:
    """Forget expired ``notify_on`` values and ended windows in small batches; how many
    ``notify_on`` keys were forgotten."""
    forgotten = 0

    async def batch() -> tuple[int, int]:
        nonlocal forgotten
        now = time.time()
        with unavailable("prune notify_on and throttle state"):
            keys = _count(await pool.execute(_PRUNE_NOTIFY, now, rows))
            ended = _count(await pool.execute(_PRUNE_WINDOWS, now, rows))
        forgotten += keys
        return keys, ended

    await prune_in_batches(batch, rows=rows)
    return forgotten


def _count(status: str) -> int:
    # asyncpg returns the command tag, e.g. "DELETE 42".
    return int(status.rsplit(" ", 1)[-1])
