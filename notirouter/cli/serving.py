"""``notirouter serve`` and ``notirouter check``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
from typing import Any

import uvicorn

from notirouter.cli.check_queue import describe_queue, reach_queue
from notirouter.cli.common import EXIT_CONFIG, EXIT_OK, add_config_option, load, run_command
from notirouter.logs import configure_logging
from notirouter.queue.writer import QueueUnavailable
from notirouter.receiver import create_app
from notirouter.runtime import Runtime

log = logging.getLogger("notirouter")


def add_commands(commands: Any) -> None:
    """Register ``serve`` and ``check``."""
    serve = commands.add_parser(
        "serve",
        help="run the receiver and the workers",
        description="Run the receiver and workers.",
    )
    add_config_option(serve)
    serve.add_argument("--host", help="listen address (default: server.host)")
    serve.add_argument("--port", type=int, help="listen port (default: server.port; 0: any free)")
    serve.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    serve.add_argument(
        "--no-workers",
        action="store_true",
        help="receive only: routing and delivery run in 'notirouter worker' processes",
    )
    serve.set_defaults(handler=run_command(serve_command))

    check = commands.add_parser(
        "check",
        help="validate the config",
        description="Validate the config: exit 0 with a summary, or 1 with file:line:col errors.",
    )
    add_config_option(check)
    check.add_argument("--connect", action="store_true", help="also open the queue")
    check.set_defaults(handler=run_command(check_command))


def check_command(args: argparse.Namespace) -> int:
    """Validate and summarise the config."""
    config = load(args)
    app = config.app
    print(
        f"{config.path}: OK: {_count(len(app.hooks), 'hook')}, {_count(len(app.sinks), 'sink')}, "
        f"{_count(len(app.enrichers), 'enricher')}, {_count(len(app.routes), 'route')}, "
        f"queue {describe_queue(app.queue)}"
    )
    if args.connect:
        print(f"queue reached: {reach_queue(app.queue)}")
    return EXIT_OK


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"


class _Server(uvicorn.Server):
    """uvicorn, announcing the real address once the socket is bound (port 0 included)."""

    def __init__(self, config: uvicorn.Config, hooks: list[str]) -> None:
        super().__init__(config)
        self.hook_names = hooks

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
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


def serve_command(args: argparse.Namespace) -> int:
    """Run until SIGINT/SIGTERM."""
    config = load(args)
    configure_logging(args.log_level, config.secrets)
    server_config = config.app.server
    runtime = Runtime(config)
    uv_config = uvicorn.Config(
        create_app(runtime),
        host=args.host or server_config.host,
        port=server_config.port if args.port is None else args.port,
        log_config=None,
        access_log=False,
        server_header=False,
        lifespan="off",  # the runtime starts before and stops after the server, below
    )
    server = _Server(uv_config, [hook.name for hook in config.app.hooks])
    # uvicorn's loop factory: uvloop when installed (uvicorn[standard]), as `uvicorn` would pick.
    with asyncio.Runner(loop_factory=uv_config.get_loop_factory()) as runner:
        return runner.run(_serve(runtime, server, workers=not args.no_workers))


async def _serve(runtime: Runtime, server: uvicorn.Server, *, workers: bool = True) -> int:
    try:
        await runtime.start(workers=workers)
    except QueueUnavailable as exc:
        log.error("%s", exc)
        return EXIT_CONFIG
    try:
        await server.serve()
    except SystemExit:  # uvicorn exits this way when it cannot bind the address
        return EXIT_CONFIG
    finally:
        await runtime.stop()
    return EXIT_OK if server.started else EXIT_CONFIG
