"""Proof with real processes on the real PostgreSQL: two ``serve`` and one ``worker`` on one
database, 5,000 events POSTed across both receivers, then a process killed with SIGKILL (or
the database connections cut) in the middle of the run.

Every event answered 202 must reach every sink its routes name; a delivery may repeat only if
it was in flight when its process died (at-least-once), so duplicates are bounded by the
deliveries under lease at that moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import asyncpg

from tests.backends import PostgresServer, need_postgres, through_port
from tests.conftest import TOKEN
from tests.loopback import LoopbackServer
from tests.serve_process import free_port
from tests.tcp_proxy import TcpProxy

EVENTS = 5_000
SENDERS = 24
KILL_AT = 2_000
DELIVERED_WITHIN = 60.0


def config(url: str, sink_a: str, sink_b: str) -> str:
    # Every event goes to a, odd ones to b as well: 7,500 deliveries in all.
    return f"""
hooks: [{{name: sekoia, token: {TOKEN}}}]
queue: {{backend: postgres, url: "{url}", pool_size: 8}}
delivery: {{backoff_initial: 100ms, backoff_max: 500ms, lease: 3s}}
server: {{access_log: false}}
sinks:
  a: {{type: webhook, url: "{sink_a}", concurrency: 16, timeout: 1}}
  b: {{type: webhook, url: "{sink_b}", concurrency: 16, timeout: 1}}
routes:
  - {{name: all, sinks: [a], continue: true}}
  - {{name: odd, when: "attributes.n % 2 == 1", sinks: [b]}}
"""


@dataclass
class Fleet:
    """The processes of the run, restartable by name."""

    config: Path
    log: Path
    ports: list[int]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str) -> None:
        command = [sys.executable, "-m", "notirouter"]
        if name == "worker":
            command += ["worker", "-c", str(self.config)]
        else:
            port = self.ports[int(name[-1])]
            command += ["serve", "-c", str(self.config), "--port", str(port)]
        self.processes[name] = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=self.log.open("ab")
        )

    async def ready(self) -> None:
        async with aiohttp.ClientSession() as client:
            # Generous: several processes starting at once on a loaded machine.
            deadline = time.monotonic() + 120
            for port in self.ports:
                while True:
                    with contextlib.suppress(aiohttp.ClientError):
                        async with client.get(f"http://127.0.0.1:{port}/readyz") as response:
                            if response.status == 200:
                                break
                    if time.monotonic() > deadline:
                        raise RuntimeError(self.log.read_text()[-3000:])
                    await asyncio.sleep(0.05)

    def kill(self, name: str) -> None:
        process = self.processes.pop(name)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()

    def stop(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.asynccontextmanager
async def fleet(config_path: Path, log: Path) -> AsyncIterator[Fleet]:
    running = Fleet(config_path, log, [free_port(), free_port()])
    for name in ("serve0", "serve1", "worker"):
        running.start(name)
    try:
        await running.ready()
        yield running
    finally:
        running.stop()


async def post_all(ports: list[int], at_midpoint: Callable[[], Awaitable[None]]) -> set[int]:
    """POST every event until one receiver answers 202 (a sender retries); the 202'd ``n``s."""
    accepted: set[int] = set()
    pending = list(range(EVENTS))
    midpoint = asyncio.Event()

    async def sender(client: aiohttp.ClientSession) -> None:
        while pending:
            n = pending.pop()
            body = {
                "type": "alert",
                "action": "created",
                "attributes": {"n": n},
                "metadata": {"uuid": f"event-{n}"},
            }
            for attempt in range(200):
                port = ports[(n + attempt) % 2]
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with client.post(
                        f"http://127.0.0.1:{port}/hooks/{TOKEN}", json=body
                    ) as response:
                        if response.status == 202:
                            accepted.add(n)
                            break
                await asyncio.sleep(0.1)  # refused (503) or no answer: try again shortly
            if len(accepted) >= KILL_AT and not midpoint.is_set():
                midpoint.set()
                await at_midpoint()

    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as client:
        await asyncio.gather(*(sender(client) for _ in range(SENDERS)))
    return accepted


def delivered(sink: LoopbackServer) -> Counter[int]:
    return Counter(r.json()["event"]["attributes"]["n"] for r in sink.requests)


async def wait_delivered(a: LoopbackServer, b: LoopbackServer, accepted: set[int]) -> None:
    odd = {n for n in accepted if n % 2}
    async with asyncio.timeout(DELIVERED_WITHIN):
        # Two servers' request lists are checked, not one event: poll them.
        while not (accepted <= set(delivered(a)) and odd <= set(delivered(b))):  # noqa: ASYNC110
            await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)  # late duplicates, if any, arrive now


async def leased(url: str) -> int:
    """Deliveries under lease now: the most that can be in flight in a process being killed."""
    connection = await asyncpg.connect(url)
    try:
        count = await connection.fetchval(
            "SELECT COUNT(*) FROM notirouter.deliveries WHERE state = 'pending'"
            " AND attempts > 0 AND next_attempt_at > extract(epoch FROM clock_timestamp())"
        )
    finally:
        await connection.close()
    return int(count)


def duplicates(sink: LoopbackServer) -> int:
    return sum(count - 1 for count in delivered(sink).values())


async def sinks() -> tuple[LoopbackServer, LoopbackServer]:
    a, b = LoopbackServer(), LoopbackServer()
    await a.start()
    await b.start()
    return a, b


async def test_a_receiver_killed_mid_run_loses_no_accepted_event(
    postgres_server: PostgresServer | str, tmp_path: Path
) -> None:
    url = need_postgres(postgres_server).create_database()
    a, b = await sinks()
    config_path = tmp_path / "notirouter.yaml"
    config_path.write_text(config(url, a.url, b.url))
    in_flight: list[int] = []
    try:
        async with fleet(config_path, tmp_path / "processes.log") as running:

            async def kill_one() -> None:
                running.kill("serve0")
                in_flight.append(await leased(url))  # includes what serve0 held
                await asyncio.sleep(0.5)
                running.start("serve0")

            accepted = await post_all(running.ports, kill_one)
            await wait_delivered(a, b, accepted)
    finally:
        await a.stop()
        await b.stop()
    print(f"kill: {duplicates(a) + duplicates(b)} duplicates, {in_flight[0]} leased at the kill")
    assert len(accepted) == EVENTS  # the sender retried until each was accepted
    assert set(delivered(a)) >= accepted
    assert set(delivered(b)) >= {n for n in accepted if n % 2}
    assert duplicates(a) + duplicates(b) <= in_flight[0]


async def test_database_connections_cut_mid_run_lose_no_accepted_event(
    postgres_server: PostgresServer | str, tmp_path: Path
) -> None:
    url = need_postgres(postgres_server).create_database()
    real = urlsplit(url)
    proxy = TcpProxy(real.hostname or "127.0.0.1", real.port or 5432)
    await proxy.start()
    a, b = await sinks()
    config_path = tmp_path / "notirouter.yaml"
    config_path.write_text(config(through_port(url, proxy.port), a.url, b.url))
    in_flight: list[int] = []
    try:
        async with fleet(config_path, tmp_path / "processes.log") as running:

            async def cut_the_database() -> None:
                await proxy.cut()
                in_flight.append(await leased(url))  # straight to the server, not the proxy
                await asyncio.sleep(2.0)  # receivers answer 503 meanwhile, workers back off
                await proxy.restore()

            accepted = await post_all(running.ports, cut_the_database)
            await wait_delivered(a, b, accepted)
    finally:
        await proxy.stop()
        await a.stop()
        await b.stop()
    print(f"cut: {duplicates(a) + duplicates(b)} duplicates, {in_flight[0]} leased at the cut")
    assert len(accepted) == EVENTS
    assert set(delivered(a)) >= accepted
    assert set(delivered(b)) >= {n for n in accepted if n % 2}
    assert duplicates(a) + duplicates(b) <= in_flight[0]
