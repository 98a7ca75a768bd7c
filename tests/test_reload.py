"""Hot reload: SIGHUP and ``notirouter reload`` on a real ``serve`` process.

A real ``notirouter serve``, real loopback sinks (one answering slowly, so attempts are in
flight when the signal arrives), the config file rewritten on disk, real signals.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp

from tests.conftest import TOKEN
from tests.loopback import LoopbackServer, Reply
from tests.serve_process import free_port, start_serve, wait_exit

SINK_DELAY = 1.5
LEASE = 8.0


def event(n: int) -> dict[str, object]:
    return {
        "type": "alert",
        "action": "created",
        "attributes": {"n": n},
        "metadata": {"uuid": f"e{n}"},
    }


def config_text(db: Path, sinks: dict[str, str], routes: str, server: str = "{}") -> str:
    sink_lines = "\n".join(
        f'  {name}: {{type: webhook, url: "{url}", concurrency: 2, timeout: 3.5}}'
        for name, url in sinks.items()
    )
    return (
        f"server: {server}\n"
        f"hooks:\n  - {{name: sekoia, token: {TOKEN}}}\n"
        f'queue: {{path: "{db}"}}\n'
        f"delivery: {{lease: {LEASE}s, backoff_initial: 100ms, backoff_max: 200ms}}\n"
        f"sinks:\n{sink_lines}\n"
        f"routes:\n{routes}"
    )


async def post(client: aiohttp.ClientSession, base: str, n: int, token: str = TOKEN) -> None:
    async with client.post(f"{base}/hooks/{token}", json=event(n)) as response:
        assert response.status == 202


async def metric(client: aiohttp.ClientSession, base: str, name: str) -> float:
    async with client.get(f"{base}/metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            labels, value = line.rsplit(" ", 1)
            if labels == name:
                return float(value)
    return 0.0


async def wait_for_log(log: Path, text: str, count: int = 1, timeout: float = 15.0) -> str:
    for _ in range(int(timeout / 0.05)):
        found = log.read_text()
        if found.count(text) >= count:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"{text!r} not logged within {timeout}s:\n{log.read_text()}")


async def wait_for_metric(
    client: aiohttp.ClientSession, base: str, name: str, value: float, timeout: float = 15.0
) -> None:
    for _ in range(int(timeout / 0.05)):
        if await metric(client, base, name) == value:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} != {value} after {timeout}s: {await metric(client, base, name)}")


def sent(server: LoopbackServer) -> list[tuple[int, str]]:
    """(event number, title) of every request the sink received, in order of arrival."""
    return [(r.json()["event"]["attributes"]["n"], r.json()["title"]) for r in server.requests]


ROUTED = 'notirouter_queue_jobs{kind="events",state="routed"}'
DONE = 'notirouter_queue_jobs{kind="deliveries",state="done"}'
PENDING = 'notirouter_queue_jobs{kind="deliveries",state="pending"}'
DEAD = 'notirouter_queue_jobs{kind="deliveries",state="dead"}'
APPLIED = 'notirouter_config_reloads_total{outcome="applied"}'
REJECTED = 'notirouter_config_reloads_total{outcome="rejected"}'


async def test_sighup_applies_a_new_config_without_losing_or_repeating_any_event(
    tmp_path: Path, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    second = LoopbackServer()
    await second.start()
    loopback.reply(Reply(200, "ok", delay=SINK_DELAY))
    db = tmp_path / "q.db"
    sinks = {"slow": f"{loopback.url}/slow", "second": f"{second.url}/second"}
    v1 = config_text(db, sinks, '  - {name: all, title: "v1 {{ attributes.n }}", sinks: [slow]}\n')
    v2 = config_text(
        db,
        sinks,
        '  - {name: all, title: "v2 {{ attributes.n }}", sinks: [slow], continue: true}\n'
        "  - {name: copy, sinks: [second]}\n",
    )
    config = write_config(v1)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    process = await start_serve(config, port, log)
    try:
        async with aiohttp.ClientSession() as client:
            for n in range(6):
                await post(client, base, n)
            await wait_for_metric(client, base, ROUTED, 6)
            await loopback.wait_for(2)
            assert loopback.in_flight == 2  # attempts in flight when the signal arrives

            config.write_text(v2, encoding="utf-8")
            # Twice in a row: the second reload replaces dispatchers still waiting for the
            # first one's attempts to finish.
            process.send_signal(signal.SIGHUP)
            await wait_for_log(log, "config reloaded from")
            process.send_signal(signal.SIGHUP)  # the first reload's attempts are still running
            await wait_for_log(log, "config reloaded from", count=2)
            assert loopback.in_flight == 2
            for n in range(6, 9):
                await post(client, base, n)
            await wait_for_metric(client, base, DONE, 12, timeout=30)
            assert await metric(client, base, APPLIED) == 2
            async with client.get(f"{base}/readyz") as response:
                assert response.status == 200  # the replaced loops are not counted as stopped

            # A broken config is refused at its place; the running one stays.
            config.write_text(v2.replace("sinks: [second]", "sinks: [nowhere]"), encoding="utf-8")
            process.send_signal(signal.SIGHUP)
            text = await wait_for_log(log, "reload rejected")
            line = v2.splitlines().index("  - {name: copy, sinks: [second]}") + 1
            assert f"{config}:{line}:" in text
            assert "nowhere" in text
            assert await metric(client, base, REJECTED) == 1
            await post(client, base, 9)
            await wait_for_metric(client, base, DONE, 14, timeout=30)

            # Past the lease: nothing in flight at the reload was attempted a second time.
            await asyncio.sleep(LEASE + 1)
            assert await metric(client, base, PENDING) == 0
            assert await metric(client, base, DONE) == 14
        process.send_signal(signal.SIGTERM)
        assert await wait_exit(process, timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        await second.stop()
    at_slow = sent(loopback)
    assert sorted(n for n, _ in at_slow) == list(range(10))  # each event once, none lost
    assert {n: title for n, title in at_slow} == {
        **{n: f"v1 {n}" for n in range(6)},  # routed (formatted) before the reload
        **{n: f"v2 {n}" for n in range(6, 10)},
    }
    assert sorted(n for n, _ in sent(second)) == [6, 7, 8, 9]
    assert loopback.max_in_flight <= 2  # the sink's concurrency held across the swap
    assert "Traceback" not in log.read_text()
    assert not (tmp_path / "q.db.pid").exists()


def reload_command(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "notirouter", "reload", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


async def test_reload_command_signals_the_server_found_through_its_pid_file(
    tmp_path: Path, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    failing = LoopbackServer()
    await failing.start()
    failing.reply(Reply(503, "down"))
    db = tmp_path / "q.db"
    keep = {"main": f"{loopback.url}/main"}
    both = {**keep, "gone": f"{failing.url}/gone"}
    v1 = config_text(db, both, '  - {name: all, title: "v1", sinks: [main, gone]}\n')
    v2 = config_text(
        db,
        keep,
        '  - {name: all, title: "v2", sinks: [main]}\n',
        server="{shutdown_grace: 11}",
    )
    config = write_config(v1)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    process = await start_serve(config, port, log)
    try:
        pid_file = tmp_path / "q.db.pid"
        assert pid_file.read_text().split() == [str(process.pid)]
        async with aiohttp.ClientSession() as client:
            for n in range(2):
                await post(client, base, n)
            await wait_for_metric(client, base, DONE, 2)
            await failing.wait_for(2)  # the removed sink's jobs are being retried

            # Invalid: reported like check, nothing signalled.
            config.write_text(v2.replace("sinks: [main]", "sinks: [nowhere]"), encoding="utf-8")
            refused = reload_command(config)
            assert refused.returncode == 1
            assert f"{config}:" in refused.stderr and "nowhere" in refused.stderr
            assert await metric(client, base, REJECTED) == 0

            config.write_text(v2, encoding="utf-8")
            done = reload_command(config)
            assert done.returncode == 0, done.stderr
            assert f"signalled notirouter process {process.pid}" in done.stdout
            text = await wait_for_log(log, "config reloaded from")
            assert "server.shutdown_grace changed: needs a restart" in text
            # The removed sink's pending jobs are dead letters, as at start.
            await wait_for_metric(client, base, DEAD, 2)
            assert await metric(client, base, PENDING) == 0
            assert await metric(client, base, APPLIED) == 1
            attempts_at_removal = len(failing.requests)
            await post(client, base, 2)
            await wait_for_metric(client, base, DONE, 3)
            await asyncio.sleep(0.5)
            assert len(failing.requests) == attempts_at_removal  # the removed sink gets nothing
        process.send_signal(signal.SIGTERM)
        assert await wait_exit(process, timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        await failing.stop()
    assert [r.json()["title"] for r in loopback.requests] == ["v1", "v1", "v2"]
    assert not pid_file.exists()
    gone = reload_command(config)
    assert gone.returncode == 5
    assert "no running notirouter process" in gone.stderr


def test_reload_without_a_pid_file_on_postgres_says_what_to_do(
    write_config: Callable[..., Path],
) -> None:
    config = write_config(
        'queue: {backend: postgres, url: "postgresql://u@127.0.0.1:1/db"}\n'
        "sinks: {console: {type: log}}\n"
    )
    result = reload_command(config)
    assert result.returncode == 5
    assert "set server.pid_file" in result.stderr
