"""The ``queue:`` settings and the commands around them: check, worker, serve --no-workers,
route and send on either backend."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from notirouter.cli import main
from notirouter.config.errors import ConfigError
from notirouter.config.loader import load_config
from tests.backends import Backend
from tests.conftest import TOKEN
from tests.loopback import LoopbackServer
from tests.serve_process import free_port

EVENT = '{"type": "alert", "action": "created", "attributes": {}, "metadata": {"uuid": "q1"}}'


def closed_port() -> int:
    return free_port()  # nothing listens there once the probe is closed


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return [str(p) for p in caught.value.problems]


def test_postgres_settings_are_checked_at_their_place(write_config: Callable[..., Path]) -> None:
    path = write_config("queue:\n  backend: postgres\n  pool_size: 1\n")
    assert problems(path) == [
        f"{path}:3:14: queue.pool_size: Input should be greater than or equal to 2"
    ]
    path = write_config("hooks: []\nqueue:\n  backend: postgres\n")
    assert problems(path) == [
        f"{path}:3:3: queue: Value error, backend postgres needs url: "
        "postgresql://user@host:port/database"
    ]
    path = write_config('queue: {backend: postgres, url: "mysql://u:pw@127.0.0.1/db"}\n')
    [problem] = problems(path)
    assert problem.startswith(f"{path}:1:33: queue.url: Value error, expected a postgresql://")
    assert "pw" not in problem


def test_check_shows_the_database_without_its_password_and_connect_reaches_it(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    port = closed_port()
    url = f"postgresql://router:hunter2-secret@127.0.0.1:{port}/alerts"
    path = str(write_config(f'queue: {{backend: postgres, url: "{url}", connect_timeout: 2s}}\n'))
    assert main(["check", "-c", path]) == 0
    out = capsys.readouterr().out
    assert out.endswith(f"queue postgres at postgresql://router@127.0.0.1:{port}/alerts\n")
    assert main(["check", "-c", path, "--connect"]) == 1
    captured = capsys.readouterr()
    assert "notirouter: cannot reach the queue: PostgreSQL: cannot connect" in captured.err
    assert "hunter2" not in captured.out + captured.err


def test_route_and_send_do_not_need_the_queue(
    write_config: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(
        write_config(
            f'queue: {{backend: postgres, url: "postgresql://u@127.0.0.1:{closed_port()}/db"}}\n'
            "sinks: {console: {type: log}}\nroutes: [{name: all, sinks: [console]}]\n"
        )
    )
    event = tmp_path / "event.json"
    event.write_text(EVENT)
    assert main(["route", "-c", path, str(event)]) == 0
    assert "MATCH all" in capsys.readouterr().out
    assert main(["send", "-c", path, str(event)]) == 0
    assert "console (route all): delivered" in capsys.readouterr().out


async def test_a_worker_delivers_what_a_receive_only_serve_accepts(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    tmp_path: Path,
) -> None:
    port = closed_port()
    path = write_config(
        f"""
        hooks: [{{name: sekoia, token: {TOKEN}}}]
        queue: {queue_backend.yaml()}
        sinks:
          a: {{type: webhook, url: "{loopback.url}"}}
        routes: [{{name: r, sinks: [a]}}]
        """
    )
    log = (tmp_path / "processes.log").open("ab")
    command = [sys.executable, "-m", "notirouter"]
    receiver = subprocess.Popen(
        [*command, "serve", "--no-workers", "-c", str(path), "--port", str(port)], stderr=log
    )
    worker = None
    try:
        async with aiohttp.ClientSession() as client:
            for _ in range(200):
                try:
                    async with client.post(
                        f"http://127.0.0.1:{port}/hooks/{TOKEN}",
                        data=EVENT,
                        headers={"content-type": "application/json"},
                    ) as response:
                        assert response.status == 202
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)
            assert loopback.requests == []  # the receiver alone routes and delivers nothing
            worker = subprocess.Popen([*command, "worker", "-c", str(path)], stderr=log)
            [request] = await loopback.wait_for(1, timeout=20)
    finally:
        for process in (receiver, worker):
            if process is not None:
                process.terminate()
                process.wait(timeout=15)

    assert worker is not None and worker.returncode == 0  # a clean stop on SIGTERM
    assert request.json()["event"]["metadata"]["uuid"] == "q1"


def test_the_database_password_is_a_secret_and_the_rest_of_the_url_is_not(
    write_config: Callable[..., Path],
) -> None:
    url = "postgresql://router:hunter2-secret@db.internal:5432/alerts"
    config = load_config(write_config(f'queue: {{backend: postgres, url: "{url}"}}\n'))
    assert "hunter2-secret" in config.secrets  # redacted from every log line
    # Messages about the queue still say which database they mean.
    assert not any("db.internal" in secret for secret in config.secrets)


async def test_dead_commands_work_the_same_on_both_backends(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    queue = queue_backend.make()
    await queue.open()
    try:
        stored = await queue.enqueue(hook="h", source="gone", dedupe_key="k", body=b'{"a": 1}')
        [event] = await queue.claim_events(1, 30)
        await queue.retry_event(event, 0, "cannot parse with source 'gone'", dead=True)
    finally:
        await queue.close()
    path = str(write_config(f"queue: {queue_backend.yaml()}\n"))

    def run(*argv: str) -> int:
        return main([*argv[:2], "-c", path, *argv[2:]])

    assert await asyncio.to_thread(run, "dead", "list", "--json") == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["kind"], row["id"], row["error"]) == (
        "event",
        stored.id,
        "cannot parse with source 'gone'",
    )
    assert await asyncio.to_thread(run, "dead", "show", stored.id) == 0
    assert json.loads(capsys.readouterr().out)["event"] == {"a": 1}
    assert await asyncio.to_thread(run, "dead", "replay", "--all") == 0
    assert "1 dead letter queued again" in capsys.readouterr().out
    assert await asyncio.to_thread(run, "dead", "list") == 0
    assert capsys.readouterr().out == "no dead letters\n"
    assert await asyncio.to_thread(run, "dead", "purge") == 0
    assert "0 dead letters deleted" in capsys.readouterr().out
