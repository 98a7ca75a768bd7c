"""A sink that hangs holds only its own connections: the other sinks keep delivering."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from notirouter.api.http import HttpClient, HttpRequest, TransportError
from tests.commands import wait_until
from tests.conftest import TOKEN
from tests.loopback import LoopbackServer
from tests.sekoia_fixtures import API_KEY, FakeSekoia, alert_event, metadata
from tests.serving import Served, serve


class SilentServer:
    """Accepts connections on 127.0.0.1, reads what comes, and never answers."""

    def __init__(self) -> None:
        self.connections: list[asyncio.StreamWriter] = []
        self.accepted = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self.stopping = False
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            if self.stopping:  # accepted by the kernel while stopping: dropped like the rest
                writer.transport.abort()
                return
            self.connections.append(writer)
            self.accepted.set()
            with contextlib.suppress(ConnectionError):
                while await reader.read(65536):
                    pass
        finally:
            self._handlers.discard(task)

    async def wait_for_connections(self, count: int, timeout: float = 120.0) -> None:
        async with asyncio.timeout(timeout):  # generous: 256 connections on a loaded machine
            while len(self.connections) < count:
                self.accepted.clear()
                await self.accepted.wait()

    async def stop(self) -> None:
        """Stop listening, then reset every connection: each waiting request fails at once.

        In that order, no connection can arrive after the others were dropped and hang; the
        handlers have all returned when it returns (it may be called more than once).
        """
        self.stopping = True
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for writer in self.connections:
            writer.transport.abort()
        async with asyncio.timeout(30):
            while self._handlers:
                await asyncio.gather(*self._handlers, return_exceptions=True)


@pytest.fixture
async def silent() -> AsyncIterator[SilentServer]:
    server = SilentServer()
    await server.start()
    yield server
    await server.stop()


# A stuck attempt that fails is retried only after a minute: once the silent server drops its
# connections, nothing of the stuck sink is in flight while the test ends.
DELIVERY = "delivery: {backoff_initial: 60s, backoff_max: 120s}"


def config_text(db: Path, stuck_port: int, healthy_url: str) -> str:
    return f"""
    hooks:
      - {{name: sekoia, token: {TOKEN}}}
    queue: {{path: "{db}"}}
    {DELIVERY}
    sinks:
      stuck: {{type: webhook, url: "http://127.0.0.1:{stuck_port}/x", concurrency: 256,
              timeout: 60}}
      healthy: {{type: webhook, url: "{healthy_url}/ok", concurrency: 4}}
    routes:
      - {{name: to-stuck, match: {{action: created}}, sinks: [stuck]}}
      - {{name: to-healthy, match: {{action: updated}}, sinks: [healthy]}}
    """


async def post_events(served: Served, action: str, numbers: range) -> None:
    async with aiohttp.ClientSession() as client:

        async def one(n: int) -> None:
            body = {"type": "alert", "action": action, "metadata": {"uuid": f"e{n}"}}
            async with client.post(f"{served.url}/hooks/{TOKEN}", json=body) as response:
                assert response.status == 202

        await asyncio.gather(*(one(n) for n in numbers))


async def release_the_stuck_sink(served: Served, silent: SilentServer, attempts: int) -> None:
    """Drop the silent server's connections and wait until each stuck attempt has failed.

    The drain at the end of ``serve`` then has nothing of the stuck sink to wait for; without
    this it would wait its whole grace for attempts still hanging.
    """
    await silent.stop()
    registry = served.runtime.metrics.registry
    failed = {"sink": "stuck", "outcome": "retry"}

    async def count() -> float:
        return registry.get_sample_value("notirouter_delivery_attempts_total", failed) or 0

    await wait_until(count, lambda n: n >= attempts, what="every stuck attempt failed", timeout=120)


async def test_a_hanging_sink_at_full_concurrency_does_not_starve_a_healthy_one(
    tmp_path: Path,
    write_config: Callable[..., Path],
    silent: SilentServer,
    loopback: LoopbackServer,
) -> None:
    config = write_config(config_text(tmp_path / "q.db", silent.port, loopback.url))
    async with serve(config) as served:
        await post_events(served, "created", range(256))
        # The hanging service now holds 256 connections, as many as the whole pool once had;
        # the healthy sink has none open yet.
        await silent.wait_for_connections(256)
        await post_events(served, "updated", range(256, 276))
        received = await loopback.wait_for(20, timeout=120)
        assert len(received) == 20
        assert len(silent.connections) == 256  # never more than its own budget
        await release_the_stuck_sink(served, silent, 256)


async def test_a_hanging_sink_does_not_starve_the_enricher(
    tmp_path: Path,
    write_config: Callable[..., Path],
    silent: SilentServer,
    loopback: LoopbackServer,
) -> None:
    api = LoopbackServer()
    await api.start()
    sekoia = FakeSekoia(api)
    config = write_config(
        f"""
        hooks:
          - {{name: sekoia, token: {TOKEN}}}
        queue: {{path: "{tmp_path / "q.db"}"}}
        {DELIVERY}
        enrichers:
          sekoia: {{type: sekoia, api_key: {API_KEY}, base_url: "{sekoia.url}", region: fra1,
                   attempts: 1, timeout: 5}}
        sinks:
          stuck: {{type: webhook, url: "http://127.0.0.1:{silent.port}/x", concurrency: 256,
                  timeout: 60}}
          healthy: {{type: webhook, url: "{loopback.url}/ok"}}
        routes:
          - {{name: to-stuck, match: {{action: created}}, sinks: [stuck]}}
          - {{name: enriched, match: {{action: updated}}, enrich: [sekoia], sinks: [healthy]}}
        """
    )
    try:
        async with serve(config) as served:
            await post_events(served, "created", range(256))
            await silent.wait_for_connections(256)
            event = alert_event("updated")
            event["metadata"] = metadata(uuid="00000000-0000-4000-8000-000000000001")
            async with aiohttp.ClientSession() as client:
                url = f"{served.url}/hooks/{TOKEN}"
                async with client.post(url, json=event) as response:
                    assert response.status == 202
            body = (await loopback.wait_for(1, timeout=120))[0].json()
            # Enriched: the alert's title came from the API, not the degraded fallback.
            assert body["title"] == "Alert updated: Suspicious PowerShell download"
            await release_the_stuck_sink(served, silent, 256)
    finally:
        await api.stop()


async def test_a_client_budget_is_its_own(silent: SilentServer, loopback: LoopbackServer) -> None:
    shared = HttpClient()
    await shared.start()
    stuck, healthy = shared.with_budget(2), shared.with_budget(2)
    try:
        hanging = [
            asyncio.create_task(
                stuck.send(HttpRequest(f"http://127.0.0.1:{silent.port}/"), timeout=30)
            )
            for _ in range(3)
        ]
        await silent.wait_for_connections(2)
        answer = await healthy.send(HttpRequest(f"{loopback.url}/ok"), timeout=5)
        assert answer.status == 200
        # The third request of the stuck client waits for its own budget, and says so.
        with pytest.raises(TransportError, match="all 2 of this budget busy"):
            await stuck.send(HttpRequest(f"http://127.0.0.1:{silent.port}/"), timeout=0.2)
        assert len(silent.connections) == 2
        for task in hanging:
            task.cancel()
        await asyncio.gather(*hanging, return_exceptions=True)
    finally:
        await shared.aclose()
