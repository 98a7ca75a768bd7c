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
    # Version numbers may leave gaps (each feature's migration keeps its number).
    for version in sorted(step for step in MIGRATIONS if step > version):
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
    return version


def _statements(script: str) -> list[str]:
    # executescript() would COMMIT first: split so the whole step stays one transaction.
    return [s.strip() for s in script.split(";") if s.strip()]
