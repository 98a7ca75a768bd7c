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


def only_400_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (400, 400))


async def test_a_low_descriptor_limit_lowers_the_cap_and_refuses_with_503_not_emfile(
    tmp_path: Path, write_config: Callable[..., Path], descriptors_for_this_test: int
) -> None:
    config = write_config(
        f"""
        server: {{idle_timeout: 120s}}
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
    process = await start_serve(config, port, log, preexec=only_400_descriptors)
    room = 400 - 320  # what notirouter keeps for the queue, outgoing connections and logs
    held: list[socket.socket] = []
    try:
        # start_serve's own readiness probe may still be closing: leave it a moment.
        await asyncio.sleep(0.2)
        for _ in range(room):
            held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        await asyncio.sleep(0.3)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), timeout=10)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 503 "), answer[:200]
        assert b"retry-after: 1\r\n" in answer.lower()
    finally:
        for sock in held:
            with contextlib.suppress(OSError):
                sock.close()
        process.terminate()
        assert await wait_exit(process, timeout=15) == 0
    assert f"leaves room for {room}: connections beyond {room} get 503" in log.read_text()
