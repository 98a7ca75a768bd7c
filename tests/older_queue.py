"""A queue as an older notirouter left it: the real migration scripts applied up to a version.

Upgrade tests start from here rather than from today's schema with a table dropped, so they
stay true as later migrations are added (each is applied on top by the next open).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg

from notirouter.queue.postgres import schema as postgres_schema
from notirouter.queue.sqlite import migrations as sqlite_migrations
from tests.backends import Backend

FIRST_SQLITE_SCHEMA = Path(__file__).parent / "fixtures" / "sqlite_schema_v1.sql"
EVENT_ROW = (
    "INSERT INTO events (id, dedupe_key, hook, source, received_at, body, next_attempt_at)"
    " VALUES ('{id}', 'older-{id}', 'h', 'sekoia', 1.0, {body}, 1.0)"
)


async def older_queue(backend: Backend, version: int, *, event_id: str) -> None:
    """Create ``backend``'s queue at schema ``version`` holding one pending event ``event_id``."""
    if backend.name == "sqlite":
        with sqlite3.connect(backend.settings.path) as connection:
            connection.executescript(FIRST_SQLITE_SCHEMA.read_text())
            for step in sorted(v for v in sqlite_migrations.MIGRATIONS if 1 < v <= version):
                connection.executescript(sqlite_migrations.MIGRATIONS[step])
            connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER)")
            connection.execute("DELETE FROM schema_version")
            connection.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
            connection.execute(EVENT_ROW.format(id=event_id, body="X'7b7d'"))
        connection.close()
        return
    assert backend.settings.url is not None
    connection = await asyncpg.connect(backend.settings.url.get_secret_value())
    try:
        async with connection.transaction():
            await connection.execute(
                "CREATE SCHEMA notirouter; SET LOCAL search_path TO notirouter;"
                " CREATE TABLE schema_version (version INTEGER NOT NULL)"
            )
            for step in sorted(v for v in postgres_schema.MIGRATIONS if v <= version):
                await connection.execute(postgres_schema.MIGRATIONS[step])
            await connection.execute("INSERT INTO schema_version (version) VALUES ($1)", version)
            await connection.execute(EVENT_ROW.format(id=event_id, body="'\\x7b7d'::bytea"))
    finally:
        await connection.close()
