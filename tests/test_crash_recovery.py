"""kill -9 at a bad moment loses nothing: accepted events are delivered after a restart, and
the restarted process sends each exactly once however busy the machine is."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from tests.commands import cli_json, wait_until
from tests.conftest import TOKEN
from tests.loopback import LoopbackServer
from tests.serve_process import free_port, start_serve, wait_exit


async def test_events_accepted_before_kill_9_are_delivered_after_restart(
    tmp_path: Path, write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    sink_port = free_port()  # nothing listens there yet: every delivery fails and waits
    # A short lease, so that the restart soon takes over what the killed process held; a
    # sink timeout within it (the config check wants twice the timeout under the lease) that
    # a loopback answer meets even on a loaded machine: an answer that came too late would be
    # sent again, at least once, by design.
    config = write_config(
        f"""
        hooks:
          - {{name: sekoia, token: {TOKEN}}}
        queue: {{path: "{tmp_path / "q.db"}"}}
        delivery: {{backoff_initial: 100ms, backoff_max: 300ms, lease: 5s}}
        sinks:
          forward: {{type: webhook, url: "http://127.0.0.1:{sink_port}/sink", timeout: 2}}
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
            # Done, as the queue records it: every attempt that reached the sink has been
            # recorded, so nothing more can be on its way there.
            await wait_until(
                lambda: cli_json(["status", "--json", "-c", str(config)], capsys),
                lambda view: view["deliveries"] == {"done": 30},
                what="all 30 deliveries done",
                timeout=90,
            )
        finally:
            process.terminate()
            assert await wait_exit(process, 30) == 0
    finally:
        await sink.stop()
    delivered = sorted(r.json()["event"]["attributes"]["n"] for r in sink.requests)
    assert delivered == list(range(30))  # every accepted event, exactly once here
    assert len(set(accepted)) == 30
