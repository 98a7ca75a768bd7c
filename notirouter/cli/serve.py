"""``notirouter serve`` and ``notirouter check``."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

import uvicorn

from notirouter.cli.common import EXIT_CONFIG, EXIT_OK, add_config_option, load, run_command
from notirouter.config.log_settings import LOG_FORMATS, LOG_LEVELS
from notirouter.ingest.server import DrainingServer, uvicorn_config
from notirouter.logs import configure_logging
from notirouter.queue.protocol import QueueUnavailable
from notirouter.reload import reloading
from notirouter.runtime import Runtime

log = logging.getLogger("notirouter")


def add_commands(commands: Any) -> None:
    """Register ``serve``."""
    serve = commands.add_parser(
        "serve",
        help="run the receiver and the workers",
        description="Run the receiver and workers.",
    )
    add_config_option(serve)
    serve.add_argument("--host", help="listen address (default: server.host)")
    serve.add_argument("--port", type=int, help="listen port (default: server.port; 0: any free)")
    serve.add_argument(
        "--log-level", type=str.upper, choices=LOG_LEVELS, help="default: logging.level (INFO)"
    )
    serve.add_argument(
        "--log-format", choices=LOG_FORMATS, help="text or json lines (default: logging.format)"
    )
    serve.add_argument(
        "--init",
        action="store_true",
        help="start a new, empty queue even where one existed and its file is missing",
    )
    serve.add_argument(
        "--no-workers",
        action="store_true",
        help="receive only: routing and delivery run in 'notirouter worker' processes",
    )
    serve.set_defaults(handler=run_command(serve_command))


def serve_command(args: argparse.Namespace) -> int:
    """Run until SIGINT/SIGTERM, then drain (see :mod:`notirouter.ingest.server`) and exit 0."""
    config = load(args)
    settings = config.app.logging
    configure_logging(
        args.log_level or settings.level, config.secrets, args.log_format or settings.format
    )
    server_config = config.app.server
    runtime = Runtime(config)
    uv_config = uvicorn_config(
        runtime,
        host=args.host or server_config.host,
        port=server_config.port if args.port is None else args.port,
    )
    server = DrainingServer(uv_config, runtime, [hook.name for hook in config.app.hooks])
    # uvicorn's loop factory: uvloop when installed (uvicorn[standard]), as `uvicorn` would pick.
    with asyncio.Runner(loop_factory=uv_config.get_loop_factory()) as runner:
        return runner.run(
            _serve(runtime, server, init_queue=args.init, workers=not args.no_workers)
        )


async def _serve(
    runtime: Runtime, server: uvicorn.Server, *, init_queue: bool = False, workers: bool = True
) -> int:
    try:
        await runtime.start(init_queue=init_queue, workers=workers)
    except QueueUnavailable as exc:
        log.error("%s", exc)
        return EXIT_CONFIG
    try:
        async with reloading(runtime):  # SIGHUP reads the config again
            await server.serve()
    except SystemExit:  # uvicorn exits this way when it cannot bind the address
        return EXIT_CONFIG
    finally:
        await runtime.stop()
        log.info("notirouter stopped: queue closed")
    return EXIT_OK if server.started else EXIT_CONFIG
