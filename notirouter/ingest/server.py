"""The HTTP server of ``notirouter serve``: uvicorn with our connection limits and a drain.

uvicorn's own signal handling stops the server and then re-raises the signal, which kills the
process before the runtime could finish the deliveries in flight (each one was then sent again
after its lease). Here SIGTERM and SIGINT start the runtime's drain instead: ``/readyz`` and
new webhooks answer ``503`` at once, the attempts in flight get up to ``server.shutdown_grace``
to finish and record their outcome, then the server stops listening and ``serve`` returns (exit
status 0) so its caller can close the queue. A second SIGINT (Ctrl+C twice) stops at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from types import FrameType

import uvicorn

from notirouter.config.models import ServerConfig
from notirouter.ingest.descriptors import connection_cap, raise_descriptor_limit
from notirouter.ingest.http_protocol import ConnectionLimits, limited_protocol
from notirouter.ingest.receiver import create_app
from notirouter.runtime import Runtime

log = logging.getLogger("notirouter")
# Requests still being answered when the drain is over (a POST that was already committing)
# get this long before uvicorn cancels them; bodies still arriving are refused at once.
HTTP_SHUTDOWN_SECONDS = 3


def connection_limits(server: ServerConfig, max_connections: int) -> ConnectionLimits:
    """The per-connection limits of ``server:``, with the connection cap actually applied."""
    return ConnectionLimits(
        max_header_bytes=server.max_header_bytes,
        max_headers_bytes=server.max_headers_bytes,
        header_timeout=server.header_timeout,
        idle_timeout=server.idle_timeout,
        body_timeout=server.body_timeout,
        max_connections=max_connections,
    )


def uvicorn_config(runtime: Runtime, *, host: str, port: int) -> uvicorn.Config:
    """uvicorn serving ``runtime`` with the limits of its ``server:`` config."""
    server = runtime.config.app.server
    descriptors = raise_descriptor_limit()
    log.info(
        "descriptor limit: %d (was %d, hard limit %d)",
        descriptors.soft,
        descriptors.was,
        descriptors.hard,
    )
    limits = connection_limits(server, connection_cap(server.max_connections, descriptors))
    return uvicorn.Config(
        create_app(runtime),
        host=host,
        port=port,
        http=limited_protocol(limits),
        timeout_keep_alive=server.idle_timeout,  # type: ignore[arg-type]  # a float works
        timeout_graceful_shutdown=HTTP_SHUTDOWN_SECONDS,
        log_config=None,
        access_log=False,
        server_header=False,
        # uvicorn would believe X-Forwarded-For from 127.0.0.1 and replace the peer with it;
        # the allow-list reads that header itself, from server.trusted_proxies only.
        proxy_headers=False,
        lifespan="off",  # the runtime starts before and stops after the server
    )


class DrainingServer(uvicorn.Server):
    """uvicorn, announcing its address, and draining the runtime on SIGTERM/SIGINT."""

    def __init__(self, config: uvicorn.Config, runtime: Runtime, hooks: list[str]) -> None:
        super().__init__(config)
        self.runtime = runtime
        self.hook_names = hooks
        self.stop_signal: int | None = None
        self._drain: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Ask for a drain (handled on the next tick); never re-raise the signal."""
        if self.stop_signal is None:
            self.stop_signal = sig
        elif sig == signal.SIGINT:
            self.force_exit = True
            self.should_exit = True

    def request_stop(self) -> None:
        """Drain and stop, as on SIGTERM (for callers without a signal)."""
        self.handle_exit(signal.SIGTERM, None)

    async def on_tick(self, counter: int) -> bool:
        """Start the drain once asked; stop the server once it is over."""
        if self.stop_signal is not None and self._drain is None:
            name = signal.Signals(self.stop_signal).name
            log.info(
                "%s: draining (up to %gs for deliveries in flight); new webhooks get 503",
                name,
                self.runtime.config.app.server.shutdown_grace,
            )
            self._drain = asyncio.create_task(self.runtime.drain())
        if self._drain is not None and self._drain.done():
            self.should_exit = True
        return await super().on_tick(counter)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start listening, then log the real address (port 0 included)."""
        await super().startup(sockets)
        for server in self.servers:
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                shown = f"[{host}]" if ":" in host else host
                log.info(
                    "notirouter listening on http://%s:%d (hooks: %s; POST /hooks/<token>)",
                    shown,
                    port,
                    ", ".join(self.hook_names) or "none",
                )
