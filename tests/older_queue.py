"""A queue as an older notirouter left it: the real migration scripts applied up to a version.

Faking an old schema by dropping what a later migration added breaks as soon as yet another
migration exists; replaying the scripts as they are gives the exact tables an older release
made, so an upgrade test covers every step after it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import asyncpg

from notirouter.queue.postgres import schema as postgres_schema
from notirouter.queue.sqlite import migrations as sqlite_migrations
from tests.backends import Backend

# The SQLite schema before versions existed: version 1, the start of every upgrade path.
FIRST_SCHEMA = Path(__file__).parent / "fixtures" / "sqlite_schema_v1.sql"
DEDUPE_KEY = "old-1"


def old_alert() -> dict[str, object]:
    """The body of the event the older notirouter had received and not yet routed."""
    return {"type": "alert", "action": "created", "attributes": {}, "metadata": {"uuid": "old-1"}}


async def older_queue(backend: Backend, version: int, *, event_id: str) -> None:
    """Create ``backend``'s queue at schema ``version`` holding one pending event ``event_id``
    (dedupe key ``old-1``, body :func:`old_alert`), received a minute ago."""
    body = json.dumps(old_alert()).encode()
    received = time.time() - 60
    if backend.name == "sqlite":
        _older_sqlite(Path(str(backend.settings.path)), version, event_id, body, received)
        return
    assert backend.settings.url is not None
    connection = await asyncpg.connect(backend.settings.url.get_secret_value())
    try:
        async with connection.transaction():
            await connection.execute(
                f"CREATE SCHEMA {postgres_schema.SCHEMA_NAME};"
                f" SET LOCAL search_path TO {postgres_schema.SCHEMA_NAME};"
                " CREATE TABLE schema_version (version INTEGER NOT NULL)"
            )
            for step in sorted(v for v in postgres_schema.MIGRATIONS if v <= version):
                await connection.execute(postgres_schema.MIGRATIONS[step])
            await connection.execute("INSERT INTO schema_version (version) VALUES ($1)", version)
            await connection.execute(
                "INSERT INTO events (id, dedupe_key, hook, source, received_at, body,"
                " next_attempt_at) VALUES ($1, $2, 'sekoia', 'sekoia', $3, $4, $3)",
                event_id,
                DEDUPE_KEY,
                received,
                body,
            )
    finally:
        await connection.close()


def _older_sqlite(db: Path, version: int, event_id: str, body: bytes, received: float) -> None:
    with sqlite3.connect(db) as connection:
        connection.executescript(FIRST_SCHEMA.read_text())
        for step in sorted(v for v in sqlite_migrations.MIGRATIONS if v <= version):
            connection.executescript(sqlite_migrations.MIGRATIONS[step])
        if version > 1:  # version 1 had no schema_version table
            connection.execute("DELETE FROM schema_version")
            connection.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        connection.execute(
            "INSERT INTO events (id, dedupe_key, hook, source, received_at, body,"
            " next_attempt_at) VALUES (?, ?, 'sekoia', 'sekoia', ?, ?, ?)",
            (event_id, DEDUPE_KEY, received, body, received),
        )
    connection.close()
