"""Run the real receiver and workers (uvicorn on a free loopback port) inside a test, with the
config and events most tests feed it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import uvicorn

from notirouter.config.loader import load_config
from notirouter.ingest.server import uvicorn_config
from notirouter.queue.inspection_records import QueueSnapshot
from notirouter.runtime import Runtime
from tests.backends import Backend
from tests.commands import wait_until
from tests.conftest import TOKEN


@dataclass
class Served:
    """A running notirouter: its base URL and its runtime."""

    url: str
    runtime: Runtime


@contextlib.asynccontextmanager
async def serve(
    config_path: Path, environ: dict[str, str] | None = None, *, init_queue: bool = False
) -> AsyncIterator[Served]:
    """Start ``notirouter serve`` in-process on 127.0.0.1 and a free port.

    ``init_queue`` is ``serve --init``.
    """
    config = load_config(config_path, environ=environ)
    runtime = Runtime(config)
    # The same uvicorn set-up as `notirouter serve`: its protocol, limits and timeouts.
    server = uvicorn.Server(uvicorn_config(runtime, host="127.0.0.1", port=0))
    await runtime.start(init_queue=init_queue)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("the server stopped during start-up")
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield Served(f"http://127.0.0.1:{port}", runtime)
    finally:
        server.should_exit = True
        await task
        await runtime.stop()


def config(backend: Backend, sinks: str, routes: str, delivery: str = "") -> str:
    """A config with the test hook, ``backend``'s queue, quick retries, and the ``sinks:`` and
    ``routes:`` given (indented YAML lines); ``delivery`` adds to the ``delivery:`` mapping."""
    return f"""
hooks:
  - {{name: sekoia, token: {TOKEN}}}
queue: {backend.yaml()}
delivery: {{backoff_initial: 50ms, backoff_max: 200ms, lease: 30s {delivery}}}
sinks:
{sinks}
routes:
{routes}
"""


def event(n: int, type_: str = "alert") -> dict[str, object]:
    """A minimal Sekoia.io-shaped event, distinct (and not a duplicate) per ``n``."""
    return {
        "type": type_,
        "action": "created",
        "attributes": {"uuid": f"u{n}"},
        "metadata": {"uuid": f"m{n}"},
    }


def hook_url(target: Served | str) -> str:
    """The test hook's URL on ``target`` (a served notirouter, or a base URL)."""
    base = target if isinstance(target, str) else target.url
    return f"{base}/hooks/{TOKEN}"


async def post_event(target: Served | str, body: dict[str, Any]) -> str:
    """POST ``body`` to the test hook; it must be accepted (202). Returns the event id."""
    async with (
        aiohttp.ClientSession() as client,
        client.post(hook_url(target), json=body) as response,
    ):
        assert response.status == 202
        answer: dict[str, Any] = await response.json()
        return str(answer["id"])


async def post_events(target: Served | str, events: Sequence[Mapping[str, Any]]) -> None:
    """POST each event in order on one session; each must be accepted (202)."""
    async with aiohttp.ClientSession() as client:
        for item in events:
            async with client.post(hook_url(target), json=item) as response:
                assert response.status == 202


async def wait_until_idle(served: Served, timeout: float = 60.0) -> None:
    """Wait until the queue holds no event to route and no delivery to attempt: every call a
    sink was going to make has been made and recorded (a generous deadline for a busy host)."""

    async def snapshot() -> QueueSnapshot:
        return await served.runtime.queue.inspection().snapshot()

    await wait_until(
        snapshot,
        lambda s: not s.events.get("pending") and not s.deliveries.get("pending"),
        what="the queue idle",
        timeout=timeout,
    )
