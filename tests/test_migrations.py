"""Schema versions: a queue made by an older notirouter is upgraded in place, losing nothing;
one made by a newer notirouter is refused with a clear message, on both backends."""

from __future__ import annotations

import asyncio
import sqlite3
import time
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
from tests.older_queue import older_queue
from tests.serving import serve


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
    backend = Backend("sqlite", QueueConfig(path=str(db)))
    await older_queue(backend, 1, event_id="a" * 32)
    path = write_config(config(backend, loopback.url))
    async with serve(path) as served:
        [request] = await loopback.wait_for(1)
        assert await served.runtime.queue.schema_version() == sqlite_migrations.LATEST
    assert request.json()["event"]["metadata"]["uuid"] == "old-1"
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT version FROM schema_version").fetchall() == [
            (sqlite_migrations.LATEST,)
        ]
    connection.close()


def _behind(backend: Backend, steps: int) -> int:
    """The version ``steps`` migrations before the latest on ``backend``."""
    migrations = sqlite_migrations if backend.name == "sqlite" else postgres_schema
    return sorted(migrations.MIGRATIONS)[-1 - steps]


@pytest.mark.parametrize("steps", [1, 2, 3])
async def test_a_queue_some_migrations_behind_is_upgraded_and_every_new_store_works(
    queue_backend: Backend,
    steps: int,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
) -> None:
    # The queue an older release left, pending event included: each later step runs on it.
    version = _behind(queue_backend, steps)
    await older_queue(queue_backend, version, event_id="c" * 32)
    latest = sqlite_migrations.LATEST if queue_backend.name == "sqlite" else postgres_schema.LATEST
    path = write_config(config(queue_backend, loopback.url))
    async with serve(path) as served:
        [request] = await loopback.wait_for(1)
        queue = served.runtime.queue
        assert await queue.schema_version() == latest
        # What the newer migrations added is there and usable: reconciliation's ledger, chat
        # actions' confirmation marks, the processes' status reports.
        assert await queue.changes().hold("stream", "this process", 60)
        assert await queue.changes().watermark("stream") is None
        until = time.time() + 60
        assert not await queue.interactions().toggle_mark("confirm", until)
        assert await queue.interactions().toggle_mark("confirm", until)
        assert isinstance(await queue.process_states().reports(), list)
    assert request.json()["event"]["metadata"]["uuid"] == "old-1"


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
