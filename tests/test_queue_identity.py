"""The queue file deleted or replaced under a running receiver, and a restart after that.

A queue that lost its file must stop answering 202 (the events would go into a file nobody can
open again), fail readiness and say so loudly; a restart must not create an empty queue where
one existed unless told to with ``--init``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from notirouter.queue.sqlite.existence import marker_path
from tests.conftest import TOKEN
from tests.serving import Served, serve


def alert(n: int) -> dict[str, object]:
    return {"type": "alert", "action": "created", "metadata": {"uuid": f"event-{n}"}}


def config_text(db: Path) -> str:
    return f"""
    hooks:
      - {{name: sekoia, token: {TOKEN}}}
    queue: {{path: "{db}"}}
    sinks:
      console: {{type: log}}
    routes:
      - {{name: all, sinks: [console]}}
    """


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "var" / "queue.db"


@pytest.fixture
async def served(db: Path, write_config: Callable[..., Path]) -> AsyncIterator[Served]:
    async with serve(write_config(config_text(db))) as running:
        yield running


async def post(client: aiohttp.ClientSession, served: Served, n: int) -> tuple[int, str | None]:
    async with client.post(f"{served.url}/hooks/{TOKEN}", json=alert(n)) as response:
        return response.status, response.headers.get("Retry-After")


async def readiness(client: aiohttp.ClientSession, served: Served) -> int:
    async with client.get(f"{served.url}/readyz") as response:
        return response.status


async def wait_for_lost_file_error(caplog: pytest.LogCaptureFixture) -> None:
    """The writer copies the lost file, then logs, just after refusing the first events."""
    for _ in range(500):
        if lost_file_errors(caplog):
            return
        await asyncio.sleep(0.01)


def lost_file_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "notirouter.queue"
        and r.levelno == logging.ERROR
        and "deleted or replaced" in r.getMessage()
    ]


async def test_deleting_the_queue_file_stops_accepting_and_fails_readiness(
    served: Served, db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with aiohttp.ClientSession() as client:
        assert await post(client, served, 1) == (202, None)
        assert await readiness(client, served) == 200
        db.unlink()
        assert await post(client, served, 2) == (503, "5")
        assert await readiness(client, served) == 503
        # It stays that way: the process writes into a file nobody can open any more.
        assert await post(client, served, 3) == (503, "5")
        await wait_for_lost_file_error(caplog)
    errors = lost_file_errors(caplog)
    assert len(errors) == 1, caplog.text
    assert str(db) in errors[0].getMessage()
    assert errors[0].exc_info is None


async def test_replacing_the_queue_file_stops_accepting_and_fails_readiness(
    served: Served, db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with aiohttp.ClientSession() as client:
        assert await post(client, served, 1) == (202, None)
        other = db.with_name("other.db")
        sqlite3.connect(other).close()
        os.replace(other, db)
        assert await post(client, served, 2) == (503, "5")
        assert await readiness(client, served) == 503
        await wait_for_lost_file_error(caplog)
    assert len(lost_file_errors(caplog)) == 1, caplog.text


async def test_the_lost_queue_is_rescued_next_to_its_path(
    served: Served, db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with aiohttp.ClientSession() as client:
        assert await post(client, served, 1) == (202, None)
        db.unlink()
        assert (await post(client, served, 2))[0] == 503
        await wait_for_lost_file_error(caplog)
    rescued = sorted(db.parent.glob(db.name + ".rescued-*"))
    assert len(rescued) == 1
    assert rescued[0].name in lost_file_errors(caplog)[0].getMessage()
    with sqlite3.connect(rescued[0]) as connection:
        uuids = [r[0] for r in connection.execute("SELECT dedupe_key FROM events")]
    assert uuids == ["sekoia:event-1"]


def run_serve(config: Path, *extra: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    """``notirouter serve`` that must stop by itself (it refuses to start)."""
    return subprocess.run(
        [sys.executable, "-m", "notirouter", "serve", "-c", str(config), "--port", "0", *extra],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


async def test_restart_after_deletion_refuses_to_create_an_empty_queue(
    db: Path, write_config: Callable[..., Path]
) -> None:
    config = write_config(config_text(db))
    async with serve(config) as running, aiohttp.ClientSession() as client:
        assert await post(client, running, 1) == (202, None)
    assert marker_path(db).exists()
    db.unlink()
    result = run_serve(config)
    assert result.returncode == 1
    assert str(db) in result.stderr
    assert "--init" in result.stderr
    assert "Traceback" not in result.stderr
    assert not db.exists()


async def test_init_starts_an_empty_queue_where_one_was_lost(
    db: Path, write_config: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    config = write_config(config_text(db))
    async with serve(config):
        pass
    db.unlink()
    async with serve(config, init_queue=True) as running, aiohttp.ClientSession() as client:
        assert await post(client, running, 1) == (202, None)
    assert db.exists()
    assert any(
        r.levelno == logging.WARNING and "new, empty queue" in r.getMessage()
        for r in caplog.records
    )


async def test_the_first_run_creates_the_queue_and_its_marker(
    db: Path, write_config: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    assert not db.parent.exists()
    async with serve(write_config(config_text(db))) as running, aiohttp.ClientSession() as client:
        assert await post(client, running, 1) == (202, None)
    assert db.exists() and marker_path(db).exists()
    assert str(db) in marker_path(db).read_text()
    assert any("created a new queue" in r.getMessage() for r in caplog.records)


async def test_a_queue_from_before_markers_gets_one_and_opens(
    db: Path, write_config: Callable[..., Path]
) -> None:
    config = write_config(config_text(db))
    async with serve(config):
        pass
    marker_path(db).unlink()
    async with serve(config) as running, aiohttp.ClientSession() as client:
        assert await post(client, running, 1) == (202, None)
    assert marker_path(db).exists()


async def test_init_sets_aside_the_lost_queues_write_ahead_log(
    db: Path, write_config: Callable[..., Path]
) -> None:
    config = write_config(config_text(db))
    wal = db.with_name(db.name + "-wal")
    async with serve(config) as running, aiohttp.ClientSession() as client:
        assert await post(client, running, 1) == (202, None)
        kept = wal.read_bytes()
    # As after a crash: the file is gone, its write-ahead log with the last commits is not.
    db.unlink()
    wal.write_bytes(kept)
    refused = run_serve(config)
    assert refused.returncode == 1 and str(wal) in refused.stderr
    async with serve(config, init_queue=True) as fresh:
        assert await fresh.runtime.queue.counts() == {}  # empty, as asked
    # SQLite would have deleted the old log opening the new file: it is kept, set aside.
    aside = list(db.parent.glob(db.name + "-wal.set-aside-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == kept
