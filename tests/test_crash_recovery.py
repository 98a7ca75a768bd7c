"""kill -9 at a bad moment loses nothing: accepted events are delivered after a restart."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp

from tests.conftest import TOKEN
from tests.loopback import LoopbackServer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def start_serve(config: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "notirouter", "serve", "-c", str(config), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )
    async with aiohttp.ClientSession() as client:
        for _ in range(200):
            try:
                async with client.get(f"http://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200:
                        return process
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    process.kill()
    raise RuntimeError(log.read_text())


async def test_events_accepted_before_kill_9_are_delivered_after_restart(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    sink_port = free_port()  # nothing listens there yet: every delivery fails and waits
    config = write_config(
        f"""
        hooks:
          - {{name: sekoia, token: {TOKEN}}}
        queue: {{path: "{tmp_path / "q.db"}"}}
        delivery: {{backoff_initial: 100ms, backoff_max: 300ms, lease: 1s}}
        sinks:
          forward: {{type: webhook, url: "http://127.0.0.1:{sink_port}/sink", timeout: 0.4}}
        routes:
          - {{name: all, sinks: [forward]}}
        """
    )
    port = free_port()
    log = tmp_path / "serve.log"
    process = await start_serve(config, port, log)
    accepted = []
    async with aiohttp.ClientSession() as client:
        for n in range(30):
            body = {
                "type": "alert",
                "action": "created",
                "attributes": {"n": n},
                "metadata": {"uuid": f"e{n}"},
            }
            async with client.post(f"http://127.0.0.1:{port}/hooks/{TOKEN}", json=body) as response:
                assert response.status == 202
                accepted.append((await response.json())["id"])
    os.kill(process.pid, signal.SIGKILL)
    process.wait()

    sink = LoopbackServer()
    await sink.start(sink_port)
    try:
        process = await start_serve(config, port, log)
        try:
            requests = await sink.wait_for(30, timeout=20)
            await asyncio.sleep(0.5)
        finally:
            process.terminate()
            process.wait(timeout=15)
    finally:
        await sink.stop()
    delivered = sorted(r.json()["event"]["attributes"]["n"] for r in requests)
    assert delivered == list(range(30))  # every accepted event, exactly once here
    assert len(set(accepted)) == 30
