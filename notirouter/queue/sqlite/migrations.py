"""Schema versions of the SQLite queue, and the forward migrations between them.

Version 1 is the schema notirouter had before it recorded versions (``schema.SCHEMA``, which
every open still creates if missing); a file without a ``schema_version`` table is at version 1.
Each later version is one script, applied in its own transaction. A file written by a newer
notirouter is refused rather than used: its meaning may have changed in ways this code would
silently get wrong.
"""

from __future__ import annotations

import sqlite3

from notirouter.queue.versions import too_new

# version -> the script that brings the previous version to it
MIGRATIONS: dict[int, str] = {
    2: """
    CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
    CREATE INDEX IF NOT EXISTS events_failed ON events (next_attempt_at) WHERE state = 'failed';
    """,
    # What trace reads: the routing decisions per event, one row per delivery attempt (an
    # index on failures and pauses only, so a delivered attempt costs one row and one index).
    3: """
    ALTER TABLE events ADD COLUMN routing TEXT;
    CREATE TABLE IF NOT EXISTS delivery_attempts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        delivery_id INTEGER NOT NULL,
        sink TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        at REAL NOT NULL,
        outcome TEXT NOT NULL,
        status INTEGER,
        detail TEXT,
        next_attempt_at REAL,
        paused_until REAL
    );
    CREATE INDEX IF NOT EXISTS delivery_attempts_delivery ON delivery_attempts (delivery_id);
    CREATE INDEX IF NOT EXISTS delivery_attempts_failed
        ON delivery_attempts (sink, id) WHERE outcome != 'delivered';
    CREATE TRIGGER IF NOT EXISTS deliveries_forget_attempts AFTER DELETE ON deliveries
    BEGIN DELETE FROM delivery_attempts WHERE delivery_id = OLD.id; END
    """,
    # Storm control: groups and the messages they hold (notirouter.queue.sqlite.groups).
    4: """
    CREATE TABLE IF NOT EXISTS storm_groups (
        kind TEXT NOT NULL,
        route TEXT NOT NULL,
        group_key TEXT NOT NULL,
        sinks TEXT NOT NULL,
        interval_seconds REAL NOT NULL,
        max_items INTEGER NOT NULL,
        created_at REAL NOT NULL,
        flushes INTEGER NOT NULL DEFAULT 0,
        next_flush_at REAL NOT NULL,
        PRIMARY KEY (kind, route, group_key)
    );
    CREATE INDEX IF NOT EXISTS storm_groups_due ON storm_groups (next_flush_at);
    CREATE TABLE IF NOT EXISTS storm_group_items (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        route TEXT NOT NULL,
        group_key TEXT NOT NULL,
        event_id TEXT NOT NULL,
        message TEXT NOT NULL,
        severity INTEGER NOT NULL,
        link TEXT,
        added_at REAL NOT NULL,
        UNIQUE (kind, route, group_key, event_id)
    );
    CREATE INDEX IF NOT EXISTS storm_group_items_group
        ON storm_group_items (kind, route, group_key, id);
    """,
    # Conversations: the service's id of each conversation's first message, per (sink, thread
    # key), and an index for the in-order claim (the oldest unfinished job of a thread key).
    5: """
    CREATE TABLE message_refs (
        sink TEXT NOT NULL,
        thread_key TEXT NOT NULL,
        reference TEXT NOT NULL,
        created_at REAL NOT NULL,
        used_at REAL NOT NULL,
        PRIMARY KEY (sink, thread_key)
    );
    CREATE INDEX message_refs_used ON message_refs (used_at);
    CREATE INDEX deliveries_thread ON deliveries (sink, json_extract(message, '$.thread_key'), id)
        WHERE state = 'pending';
    """,
    # Storm control's gates: the values last notified per (route, notify_on key), kept until
    # expires_at (retention after the key was last seen), and each throttle key's window.
    6: """
    CREATE TABLE notify_state (
        route TEXT NOT NULL,
        notify_key TEXT NOT NULL,
        notified TEXT,
        seen_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        PRIMARY KEY (route, notify_key)
    );
    CREATE INDEX notify_state_expires ON notify_state (expires_at);
    CREATE TABLE throttle_windows (
        route TEXT NOT NULL,
        throttle_key TEXT NOT NULL,
        window_start REAL NOT NULL,
        window_end REAL NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (route, throttle_key)
    );
    CREATE INDEX throttle_windows_end ON throttle_windows (window_end);
    """,
    # Silences (notirouter.queue.sqlite.silences): kept after they end, until retention.
    7: """
    CREATE TABLE silences (
        id TEXT PRIMARY KEY,
        matchers TEXT NOT NULL,
        created_at REAL NOT NULL,
        ends_at REAL NOT NULL,
        expired_at REAL,
        comment TEXT NOT NULL,
        author TEXT NOT NULL
    );
    CREATE INDEX silences_ends ON silences (ends_at);
    """,
    # Storm mode (notirouter.queue.sqlite.storms): each sink's storm state and totals, and for
    # a delivery folded into a digest, the digest's delivery id.
    8: """
    ALTER TABLE deliveries ADD COLUMN folded_into INTEGER;
    CREATE INDEX deliveries_folded_into ON deliveries (folded_into) WHERE folded_into IS NOT NULL;
    CREATE TABLE sink_storms (
        sink TEXT PRIMARY KEY,
        active INTEGER NOT NULL DEFAULT 0,
        since REAL,
        ended_at REAL,
        storms INTEGER NOT NULL DEFAULT 0,
        folded INTEGER NOT NULL DEFAULT 0,
        digests INTEGER NOT NULL DEFAULT 0,
        folded_at REAL,
        updated_at REAL NOT NULL
    );
    """,
    # Chat actions: clicks queued for the interaction worker, with what came of them, and the
    # marks that refuse a replayed request (a Slack signature) or arm a confirmation.
    9: """
    CREATE TABLE interactions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        sink TEXT NOT NULL,
        payload TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        next_attempt_at REAL NOT NULL,
        lease INTEGER NOT NULL DEFAULT 0,
        result TEXT,
        finished_at REAL
    );
    CREATE INDEX interactions_due ON interactions (next_attempt_at) WHERE state = 'pending';
    CREATE INDEX interactions_finished ON interactions (finished_at);
    CREATE TABLE interaction_marks (
        mark TEXT PRIMARY KEY,
        until REAL NOT NULL
    );
    CREATE INDEX interaction_marks_until ON interaction_marks (until);
    """,
    # Reconciliation with an API (README "Never miss an alert"): per stream (an enricher and
    # community) its watermark and the lease of the process polling it, and the changes
    # already notified (``origin``: by a webhook or by reconciliation), kept for at least the
    # lookback.
    10: """
    CREATE TABLE reconcile_streams (
        stream TEXT PRIMARY KEY,
        watermark REAL,
        holder TEXT,
        lease_until REAL NOT NULL DEFAULT 0
    );
    CREATE TABLE seen_changes (
        change_key TEXT PRIMARY KEY,
        event_id TEXT NOT NULL,
        origin TEXT NOT NULL,
        seen_at REAL NOT NULL
    );
    CREATE INDEX seen_changes_seen ON seen_changes (seen_at);
    """,
    # What each serving process holds in memory (caches, circuits, sinks in flight), as it last
    # reported it, for ``notirouter status`` (notirouter.operations.process_state).
    12: """
    CREATE TABLE IF NOT EXISTS process_states (
        process_id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started_at REAL NOT NULL,
        reported_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        state TEXT NOT NULL
    );
    """,
}
LATEST = max(MIGRATIONS)


def current_version(connection: sqlite3.Connection) -> int:
    """The version of the file open on ``connection``."""
    has_table = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if has_table is None:
        return 1
    row = connection.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return 1 if row is None or row[0] is None else int(row[0])


def migrate(connection: sqlite3.Connection, where: str) -> int:
    """Bring the file up to :data:`LATEST`; refuse one that is newer. Returns the version."""
    version = current_version(connection)
    if version > LATEST:
        raise too_new(version, LATEST, where)
    # Versions are applied in order; a number may be missing (kept free for another change).
    for version in sorted(v for v in MIGRATIONS if v > version):
        connection.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated while this one waited for the write lock.
            if current_version(connection) >= version:
                connection.execute("ROLLBACK")
                continue
            for statement in _statements(MIGRATIONS[version]):
                connection.execute(statement)
            connection.execute("DELETE FROM schema_version")
            connection.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
    return current_version(connection)


def _statements(script: str) -> list[str]:
    # executescript() would COMMIT first: split so the whole step stays one transaction. A
    # trigger's body has its own semicolons: a piece ends where SQLite says a statement does.
    statements: list[str] = []
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                statements.append(pending.strip())
            pending = ""
    return statements
