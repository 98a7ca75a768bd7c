"""1,000 idle sockets held open do not lock webhooks out, even from a 1,024-descriptor start.

``notirouter serve`` is started with the common default soft limit of 1,024 descriptors (its
hard limit left as it is); it raises its soft limit at start, so the held sockets cost
descriptors it has, not the ones webhooks need.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import TOKEN
from tests.serve_process import free_port, start_serve, wait_exit

IDLE = 1000
WEBHOOKS = 100
START_SOFT_LIMIT = 1024
# Both ends of the idle sockets live in this test process and the server: room for both.
NEEDED = 3 * IDLE


def start_at_1024_descriptors() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (START_SOFT_LIMIT, hard))


@pytest.fixture
def descriptors_for_this_test() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < NEEDED:
        pytest.skip(f"the hard descriptor limit ({hard}) is below the {NEEDED} this test needs")
    if soft != resource.RLIM_INFINITY and soft < NEEDED:
        resource.setrlimit(resource.RLIMIT_NOFILE, (NEEDED, hard))
    return hard


async def test_a_thousand_idle_sockets_while_a_hundred_webhooks_get_202(
    tmp_path: Path, write_config: Callable[..., Path], descriptors_for_this_test: int
) -> None:
    config = write_config(
        f"""
        server: {{idle_timeout: 120s, header_timeout: 120s}}
        hooks:
          - {{name: sekoia, token: {TOKEN}}}
        queue: {{path: "{tmp_path / "q.db"}"}}
        sinks:
          console: {{type: log}}
        routes:
          - {{name: all, sinks: [console]}}
        """
    )
    port = free_port()
    log = tmp_path / "serve.log"
    process = await start_serve(config, port, log, preexec=start_at_1024_descriptors)
    idle: list[socket.socket] = []
    try:
        for _ in range(IDLE):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            idle.append(sock)
        await asyncio.sleep(0.5)  # the server has accepted them all by now

        timeout = aiohttp.ClientTimeout(total=20)
        connector = aiohttp.TCPConnector(limit=10)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as client:

            async def post(n: int) -> int:
                body = {"type": "alert", "action": "created", "metadata": {"uuid": f"e{n}"}}
                try:
                    async with client.post(
                        f"http://127.0.0.1:{port}/hooks/{TOKEN}", json=body
                    ) as reply:
                        return reply.status
                except (aiohttp.ClientError, TimeoutError):
                    return -1  # refused, reset or timed out: the lock-out this test is about

            statuses = await asyncio.gather(*(post(n) for n in range(WEBHOOKS)))
        assert statuses == [202] * WEBHOOKS
        # The held sockets are still open: the server did not just drop them to cope.
        for sock in idle[:: IDLE // 10]:
            sock.setblocking(False)
            with pytest.raises(BlockingIOError):
                sock.recv(1)
    finally:
        for sock in idle:
            with contextlib.suppress(OSError):
                sock.close()
        process.terminate()
        assert await wait_exit(process, timeout=15) == 0
    text = log.read_text()
    hard = descriptors_for_this_test
    assert f"was {START_SOFT_LIMIT}, hard limit {hard})" in text, text
