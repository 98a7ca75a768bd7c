"""Run the real receiver and workers (uvicorn on a free loopback port) inside a test."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from notirouter.config.loader import load_config
from notirouter.ingest.server import uvicorn_config
from notirouter.runtime import Runtime


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
