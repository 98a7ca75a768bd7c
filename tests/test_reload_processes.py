"""``notirouter reload`` with several processes: PostgreSQL receivers and workers sharing a
``server.pid_file`` are all signalled; the pid file never names a process that is not ours.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp

from notirouter.pidfile import register, running, unregister
from tests.backends import Backend
from tests.loopback import LoopbackServer
from tests.serve_process import free_port, wait_exit
from tests.test_reload import post, reload_command, wait_for_log

OLD_TOKEN = "old-token-0123456789abcdef"
NEW_TOKEN = "new-token-0123456789abcdef"


def postgres_config(backend: Backend, pid_file: Path, sink_url: str, token: str, title: str) -> str:
    return (
        f'server: {{pid_file: "{pid_file}"}}\n'
        f"hooks: [{{name: sekoia, token: {token}}}]\n"
        f"queue: {backend.yaml()}\n"
        "delivery: {backoff_initial: 100ms, backoff_max: 200ms, lease: 8s}\n"
        f'sinks: {{main: {{type: webhook, url: "{sink_url}", timeout: 2}}}}\n'
        f'routes: [{{name: all, title: "{title}", sinks: [main]}}]\n'
    )


async def test_reload_signals_every_postgres_process_sharing_the_pid_file(
    postgres_backend: Backend,
    tmp_path: Path,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
) -> None:
    pid_file = tmp_path / "notirouter.pid"
    config = write_config(
        postgres_config(postgres_backend, pid_file, f"{loopback.url}/s", OLD_TOKEN, "v1")
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    receiver_log, worker_log = tmp_path / "serve.log", tmp_path / "worker.log"
    notirouter = [sys.executable, "-m", "notirouter"]
    receiver = subprocess.Popen(
        [*notirouter, "serve", "-c", str(config), "--port", str(port), "--no-workers"],
        stdout=subprocess.DEVNULL,
        stderr=receiver_log.open("ab"),
    )
    worker = subprocess.Popen(
        [*notirouter, "worker", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=worker_log.open("ab"),
    )
    try:
        await wait_for_log(receiver_log, "notirouter listening on")
        await wait_for_log(worker_log, "notirouter worker running")
        assert sorted(running(pid_file)) == sorted([receiver.pid, worker.pid])
        # A connection per request: the reload can outlast the receiver's idle_timeout (5 s)
        # on a loaded machine, and a kept-alive connection it closed would fail the next one.
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as client:
            await post(client, base, 0, OLD_TOKEN)
            await loopback.wait_for(1)

            config.write_text(
                postgres_config(postgres_backend, pid_file, f"{loopback.url}/s", NEW_TOKEN, "v2"),
                encoding="utf-8",
            )
            result = reload_command(config)
            assert result.returncode == 0, result.stderr
            assert f"signalled notirouter process {receiver.pid}" in result.stdout
            assert f"signalled notirouter process {worker.pid}" in result.stdout
            await wait_for_log(receiver_log, "config reloaded from")
            await wait_for_log(worker_log, "config reloaded from")

            # The receiver took the new hook token, the worker the new template.
            async with client.post(f"{base}/hooks/{OLD_TOKEN}", json={}) as response:
                assert response.status == 404
            await post(client, base, 1, NEW_TOKEN)
            await loopback.wait_for(2)
        for process in (receiver, worker):
            process.terminate()
            assert await wait_exit(process, timeout=20) == 0
    finally:
        for process in (receiver, worker):
            if process.poll() is None:
                process.kill()
                process.wait()
    assert [r.json()["title"] for r in loopback.requests] == ["v1", "v2"]
    assert not pid_file.exists()


def test_the_pid_file_names_only_live_notirouter_processes(tmp_path: Path) -> None:
    pid_file = tmp_path / "notirouter.pid"
    ended = subprocess.Popen(["true"])
    ended.wait()
    stranger = subprocess.Popen(
        [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE,
    )
    try:
        assert stranger.stdout is not None
        assert stranger.stdout.readline() == b"up\n"
        pid_file.write_text(f"{ended.pid}\n{stranger.pid}\n")
        # A pid that ended, or that another program now holds, is never signalled.
        assert running(pid_file) == []
        ours = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import time; print('up', flush=True); time.sleep(30)  # notirouter",
            ],
            stdout=subprocess.PIPE,
        )
        try:
            assert ours.stdout is not None
            assert ours.stdout.readline() == b"up\n"  # exec'd: /proc shows its command line
            register(pid_file, ours.pid)
            assert pid_file.read_text().split() == [str(ours.pid)]  # stale lines dropped
            assert running(pid_file) == [ours.pid]
            unregister(pid_file, ours.pid)
            assert not pid_file.exists()
        finally:
            ours.kill()
            ours.wait()
    finally:
        stranger.kill()
        stranger.wait()


def test_reload_with_no_process_running_exits_5(write_config: Callable[..., Path]) -> None:
    config = write_config('queue: {path: "q.db"}\nsinks: {console: {type: log}}\n')
    result = reload_command(config)
    assert result.returncode == 5
    assert "no running notirouter process found" in result.stderr
