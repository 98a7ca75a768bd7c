"""Schema versions: a queue made by an older notirouter is upgraded in place, losing nothing;
one made by a newer notirouter is refused with a clear message, on both backends."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

from notirouter.cli import main
from notirouter.config.models import QueueConfig
from notirouter.queue.postgres import schema as postgres_schema
from notirouter.queue.sqlite import migrations as sqlite_migrations
from tests.backends import Backend, PostgresServer, need_postgres
from tests.conftest import TOKEN
from tests.loopback import LoopbackServer
from tests.serving import serve

FIRST_SCHEMA = Path(__file__).parent / "fixtures" / "sqlite_schema_v1.sql"


def config(backend: Backend, sink_url: str = "http://127.0.0.1:9") -> str:
    return f"""
hooks: [{{name: sekoia, token: {TOKEN}}}]
queue: {backend.yaml()}
sinks:
  a: {{type: webhook, url: "{sink_url}"}}
routes: [{{name: r, sinks: [a]}}]
"""


async def test_a_file_of_the_first_schema_is_upgraded_and_its_pending_event_delivered(
    tmp_path: Path, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    db = tmp_path / "q.db"
    body = {"type": "alert", "action": "created", "attributes": {}, "metadata": {"uuid": "old-1"}}
    with sqlite3.connect(db) as connection:
        connection.executescript(FIRST_SCHEMA.read_text())
        connection.execute(
            "INSERT INTO events (id, dedupe_key, hook, source, received_at, body,"
            " next_attempt_at) VALUES (?, ?, 'sekoia', 'sekoia', 1.0, ?, 1.0)",
            ("a" * 32, "old-1", json.dumps(body).encode()),
        )
    connection.close()
    path = write_config(config(Backend("sqlite", QueueConfig(path=str(db))), loopback.url))
    async with serve(path) as served:
        [request] = await loopback.wait_for(1)
        assert await served.runtime.queue.schema_version() == sqlite_migrations.LATEST
    assert request.json()["event"]["metadata"]["uuid"] == "old-1"
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT version FROM schema_version").fetchall() == [
            (sqlite_migrations.LATEST,)
        ]
    connection.close()


async def _set_version(backend: Backend, version: int) -> None:
    if backend.name == "sqlite":
        with sqlite3.connect(backend.settings.path) as connection:
            connection.execute("UPDATE schema_version SET version = ?", (version,))
        connection.close()
        return
    assert backend.settings.url is not None
    connection = await asyncpg.connect(backend.settings.url.get_secret_value())
    try:
        await connection.execute("UPDATE notirouter.schema_version SET version = $1", version)
    finally:
        await connection.close()


async def test_migrate_reports_the_version_and_a_newer_queue_is_refused(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = str(write_config(config(queue_backend)))
    assert await asyncio.to_thread(main, ["migrate", "-c", path]) == 0
    latest = sqlite_migrations.LATEST if queue_backend.name == "sqlite" else postgres_schema.LATEST
    assert capsys.readouterr().out == (f"queue ({queue_backend.name}) at schema version {latest}\n")
    assert await asyncio.to_thread(main, ["check", "-c", path, "--connect"]) == 0
    assert f"queue reached: schema version {latest}" in capsys.readouterr().out

    await _set_version(queue_backend, latest + 1)
    refusal = f"has schema version {latest + 1}, newer than this notirouter understands"
    for command in (["migrate"], ["serve", "--port", "0"], ["worker"], ["dead", "list"]):
        assert await asyncio.to_thread(main, [*command, "-c", path]) == 1, command
        assert refusal in capsys.readouterr().err, command
    queue = queue_backend.make()
    with pytest.raises(Exception, match=refusal):
        await queue.open()


def test_processes_starting_together_on_postgres_migrate_once(
    postgres_server: PostgresServer | str,
) -> None:
    url = need_postgres(postgres_server).create_database()  # empty: nothing migrated yet
    fresh = Backend("postgres", QueueConfig.model_validate({"backend": "postgres", "url": url}))

    async def start_four() -> list[int]:
        queues = [fresh.make() for _ in range(4)]
        await asyncio.gather(*(queue.open() for queue in queues))
        try:
            return [await queue.schema_version() for queue in queues]
        finally:
            await asyncio.gather(*(queue.close() for queue in queues))

    assert asyncio.run(start_four()) == [postgres_schema.LATEST] * 4
