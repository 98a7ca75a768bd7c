"""Workers sleep when idle and wake on the commit that brings them work."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

from notirouter.queue.claim_loop import IDLE_RECHECK_SECONDS
from tests.conftest import TOKEN
from tests.loopback import LoopbackServer
from tests.serving import serve


async def test_idle_workers_do_not_poll_and_wake_on_commit(
    tmp_path: Path, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    path = write_config(
        f"""
        hooks: [{{name: sekoia, token: {TOKEN}}}]
        queue: {{path: "{tmp_path / "q.db"}"}}
        sinks:
          a: {{type: webhook, url: "{loopback.url}"}}
          b: {{type: log}}
        routes: [{{name: r, sinks: [a]}}]
        """
    )
    async with serve(path) as served:
        await asyncio.sleep(0.3)  # let start-up settle
        cpu_before = time.process_time()
        await asyncio.sleep(1.5)
        idle_cpu = time.process_time() - cpu_before
        async with aiohttp.ClientSession() as client:
            posted = time.monotonic()
            body = {"type": "alert", "action": "created", "attributes": {}}
            async with client.post(f"{served.url}/hooks/{TOKEN}", json=body) as response:
                assert response.status == 202
        [request] = await loopback.wait_for(1)
    # A busy-polling loop would burn a core; sleeping workers cost (nearly) nothing.
    assert idle_cpu < 0.2
    # Woken by the commit, not found by the next idle re-check.
    assert request.at - posted < IDLE_RECHECK_SECONDS / 2
