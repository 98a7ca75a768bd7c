"""SQLite failing inside an operation, and clients that give up mid-body.

A broken queue (a malformed file, a read-only or failing disk) is a 503 with ``Retry-After``,
readiness fails while it lasts, and the log says so once, without a traceback; a client that
disconnects half-way through its body costs nothing but a debug line.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from notirouter.queue.sqlite.queue import SqliteQueue
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


async def make_queue_with_events(db: Path, count: int) -> None:
    queue = SqliteQueue(db)
    await queue.open()
    for n in range(count):
        await queue.enqueue(hook="sekoia", source="sekoia", dedupe_key=f"old-{n}", body=b"{}")
    await queue.close()


def corrupt_table(db: Path, table: str) -> tuple[int, bytes]:
    """Overwrite the root page of ``table`` with garbage, as a failing disk would.

    Return where, and the bytes that were there (to repair it).
    """
    with sqlite3.connect(db) as connection:
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
        root = connection.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)
        ).fetchone()[0]
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    offset = (root - 1) * page_size
    with db.open("r+b") as file:
        file.seek(offset)
        original = file.read(page_size)
        file.seek(offset)
        file.write(b"\xa5" * page_size)
    return offset, original


async def post(client: aiohttp.ClientSession, served: Served, n: int) -> tuple[int, str, str]:
    async with client.post(f"{served.url}/hooks/{TOKEN}", json=alert(n)) as response:
        return response.status, response.headers.get("Retry-After", ""), await response.text()


async def test_a_malformed_queue_answers_503_and_fails_readiness(
    tmp_path: Path, write_config: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "queue.db"
    await make_queue_with_events(db, 50)
    corrupt_table(db, "events")
    async with serve(write_config(config_text(db))) as served, aiohttp.ClientSession() as client:
        answers = [await post(client, served, n) for n in range(5)]
        async with client.get(f"{served.url}/readyz") as response:
            ready = response.status
    for status, retry_after, text in answers:
        assert (status, retry_after) == (503, "5")
        assert "Traceback" not in text and "malformed" not in text
    assert ready == 503
    assert not [r for r in caplog.records if r.exc_info is not None], caplog.text
    refused = [
        r for r in caplog.records if r.name == "notirouter.receiver" and r.levelno == logging.ERROR
    ]
    assert len(refused) == 1, caplog.text  # once, not once per event
    assert "malformed" in refused[0].getMessage()


async def test_readiness_comes_back_once_the_file_is_repaired(
    tmp_path: Path, write_config: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "queue.db"
    await make_queue_with_events(db, 50)
    offset, original = corrupt_table(db, "events")
    async with serve(write_config(config_text(db))) as served, aiohttp.ClientSession() as client:
        assert (await post(client, served, 1))[0] == 503
        async with client.get(f"{served.url}/readyz") as response:
            assert response.status == 503
        with db.open("r+b") as file:  # repaired in place, e.g. from a block-level backup
            file.seek(offset)
            file.write(original)
        async with client.get(f"{served.url}/readyz") as response:
            assert response.status == 200
        assert (await post(client, served, 2))[0] == 202
    assert any("stores again" in r.getMessage() for r in caplog.records)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB file system of its own, so that a test can fill it."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip("a small file system to fill needs the right to mount one (root)")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the file system is full; return it."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as file:
        for _ in range(10_000):  # 4 MiB in 4 KiB writes, with room to spare
            try:
                file.write(b"\0" * 4096)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    return filler


async def test_a_full_disk_fails_readiness_until_space_is_freed(
    small_disk: Path, write_config: Callable[..., Path]
) -> None:
    async with (
        serve(write_config(config_text(small_disk / "queue.db"))) as served,
        aiohttp.ClientSession() as client,
    ):
        assert (await post(client, served, 1))[0] == 202
        filler = fill(small_disk)
        status, retry_after, _ = await post(client, served, 2)
        assert (status, retry_after) == (503, "5")
        async with client.get(f"{served.url}/readyz") as response:
            assert response.status == 503  # SELECT 1 would still run on a full disk
        filler.unlink()
        async with client.get(f"{served.url}/readyz") as response:
            assert response.status == 200
        assert (await post(client, served, 3))[0] == 202


def leave_queue_unclosed(db: Path) -> None:
    """Store an event and exit without closing, as a killed process does (-wal, -shm stay)."""
    code = (
        "import asyncio, os\n"
        "from notirouter.queue.sqlite.queue import SqliteQueue\n"
        "async def main():\n"
        f"    queue = SqliteQueue({str(db)!r})\n"
        "    await queue.open()\n"
        "    await queue.enqueue(hook='sekoia', source='sekoia', dedupe_key='old', body=b'{}')\n"
        "    os._exit(0)\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


@pytest.fixture
def read_only_directory(tmp_path: Path) -> Iterator[Path]:
    """A directory holding a queue, then mounted read-only (as after a disk error)."""
    directory = tmp_path / "ro"
    directory.mkdir()
    leave_queue_unclosed(directory / "queue.db")
    bound = subprocess.run(
        ["mount", "--bind", str(directory), str(directory)], capture_output=True, check=False
    )
    if bound.returncode != 0:
        pytest.skip("a read-only file system needs the right to mount one (root)")
    try:
        subprocess.run(
            ["mount", "-o", "remount,bind,ro", str(directory), str(directory)], check=True
        )
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


async def test_a_read_only_file_system_answers_503_and_fails_readiness(
    read_only_directory: Path, write_config: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    config = write_config(config_text(read_only_directory / "queue.db"))
    async with serve(config) as served, aiohttp.ClientSession() as client:
        answers = [await post(client, served, n) for n in range(3)]
        async with client.get(f"{served.url}/readyz") as response:
            ready = response.status
    assert [(status, retry_after) for status, retry_after, _ in answers] == [(503, "5")] * 3
    assert ready == 503
    assert not [r for r in caplog.records if r.exc_info is not None], caplog.text
    assert any("readonly" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


async def test_a_client_aborting_mid_body_is_no_error_and_stores_nothing(
    tmp_path: Path, write_config: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    db = tmp_path / "queue.db"
    async with serve(write_config(config_text(db))) as served:
        port = int(served.url.rsplit(":", 1)[1])
        loop = asyncio.get_running_loop()
        with socket.create_connection(("127.0.0.1", port)) as sock:
            head = (
                f"POST /hooks/{TOKEN} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
            )
            await loop.sock_sendall(sock, head.encode() + b'{"type": "alert", "act')
            await asyncio.sleep(0.2)
        for _ in range(500):  # the access line is written once the request is over
            if any(r.name == "notirouter.access" for r in caplog.records):
                break
            await asyncio.sleep(0.02)
        counts = await served.runtime.queue.counts()
    assert counts == {}
    access = [r.getMessage() for r in caplog.records if r.name == "notirouter.access"]
    assert len(access) == 1 and '"POST /hooks/***" 400' in access[0]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert not [r for r in caplog.records if r.exc_info is not None], caplog.text
