"""Gates on SQLite: ``notify_on`` values and throttle windows in the queue file.

Read and written inside the routing transaction (``complete_event``): the single writer is the
lock, so no other event of the key is decided in between (:mod:`notirouter.queue.gates`).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

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
from notirouter.queue.retention import PRUNE_BATCH_ROWS, prune_in_batches

if TYPE_CHECKING:
    from notirouter.queue.sqlite.queue import SqliteQueue


def decide(c: sqlite3.Connection, gated: Sequence[GatedMessage]) -> GateOutcome:
    """Decide ``gated`` on the stored state and write the new state (in the transaction)."""
    now = time.time()
    notified, windows = read_state(c, gated, now)
    outcome = apply_gates(gated, notified, windows, now)
    for note in outcome.notified:
        if note.values_json is None:  # nothing changed: only seen again
            c.execute(
                "UPDATE notify_state SET seen_at = ?, expires_at = ?"
                " WHERE route = ? AND notify_key = ?",
                (now, note.expires_at, note.route, note.key),
            )
        else:
            c.execute(
                "INSERT INTO notify_state (route, notify_key, notified, seen_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (route, notify_key) DO UPDATE SET"
                " notified = excluded.notified, seen_at = excluded.seen_at,"
                " expires_at = excluded.expires_at",
                (note.route, note.key, note.values_json, now, note.expires_at),
            )
    for counted in outcome.windows:
        window = counted.window
        c.execute(
            "INSERT INTO throttle_windows (route, throttle_key, window_start, window_end, count)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (route, throttle_key) DO UPDATE SET"
            " window_start = excluded.window_start, window_end = excluded.window_end,"
            " count = excluded.count",
            (counted.route, counted.key, window.start, window.end, window.count),
        )
    return outcome


def read_state(
    c: sqlite3.Connection, gated: Sequence[GatedMessage], now: float
) -> tuple[dict[StateKey, Values | None], dict[StateKey, Window | None]]:
    """The values last notified and the current windows of the keys ``gated`` names (an
    expired entry reads as none: pruning is housekeeping, not a condition of correctness)."""
    notified: dict[StateKey, Values | None] = {}
    for route, key in notify_keys(gated):
        row = c.execute(
            "SELECT notified FROM notify_state WHERE route = ? AND notify_key = ?"
            " AND expires_at >= ?",
            (route, key, now),
        ).fetchone()
        notified[(route, key)] = None if row is None else stored_values(row[0])
    windows: dict[StateKey, Window | None] = {}
    for route, key in throttle_keys(gated):
        found = c.execute(
            "SELECT window_start, window_end, count FROM throttle_windows"
            " WHERE route = ? AND throttle_key = ?",
            (route, key),
        ).fetchone()
        windows[(route, key)] = None if found is None else (found[0], found[1], found[2])
    return notified, windows


async def prune(queue: SqliteQueue, *, rows: int = PRUNE_BATCH_ROWS) -> int:
    """Forget expired ``notify_on`` values and ended throttle windows, in small batches;
    return how many ``notify_on`` keys were forgotten."""
    forgotten = 0

    async def batch() -> tuple[int, int]:
        nonlocal forgotten

        def operation(c: sqlite3.Connection) -> tuple[int, int]:
            now = time.time()
            keys = c.execute(
                "DELETE FROM notify_state WHERE rowid IN (SELECT rowid FROM notify_state"
                " WHERE expires_at < ? LIMIT ?)",
                (now, rows),
            ).rowcount
            ended = c.execute(
                "DELETE FROM throttle_windows WHERE rowid IN (SELECT rowid FROM"
                " throttle_windows WHERE window_end < ? LIMIT ?)",
                (now, rows),
            ).rowcount
            return int(keys), int(ended)

        keys, ended = await queue.write(operation)
        forgotten += keys
        return keys, ended

    await prune_in_batches(batch, rows=rows)
    return forgotten
