"""A real HTTP server on loopback that plays a webhook service in tests.

It records every request and answers from a script of responses (status, body, headers), the
last one repeating, so a test can say "answer 429 with Retry-After: 1, then 200 ok".
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Reply:
    """One scripted answer."""

    status: int = 200
    body: str | bytes = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Recorded:
    """One request as the server received it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


Handler = Callable[[web.Request, bytes], Awaitable[web.StreamResponse] | web.StreamResponse]


class LoopbackServer:
    """An aiohttp server on 127.0.0.1 with scripted replies."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.replies: list[Reply] = [Reply(200, "ok")]
        self.handler: Handler | None = None
        self.arrived = asyncio.Event()
        self.in_flight = 0
        self.max_in_flight = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234``."""
        return f"http://127.0.0.1:{self.port}"

    def reply(self, *replies: Reply) -> None:
        """Answer the next requests with ``replies`` in order; the last one repeats."""
        self.replies = list(replies)

    async def start(self, port: int = 0) -> None:
        """Listen on ``port`` (default: a free one)."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            Recorded(
                request.method, request.path, request.query_string, dict(request.headers), body
            )
        )
        self.arrived.set()
        if self.handler is not None:
            result = self.handler(request, body)
            return await result if asyncio.iscoroutine(result) else result  # type: ignore[return-value]
        reply = self.replies[min(len(self.requests) - 1, len(self.replies) - 1)]
        if reply.delay:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                await asyncio.sleep(reply.delay)
            finally:
                self.in_flight -= 1
        body_bytes = reply.body.encode() if isinstance(reply.body, str) else reply.body
        return web.Response(status=reply.status, body=body_bytes, headers=reply.headers)

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Recorded]:
        """Wait until at least ``count`` requests arrived; return them all."""
        async with asyncio.timeout(timeout):
            while len(self.requests) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.requests
