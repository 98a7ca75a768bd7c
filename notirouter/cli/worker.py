"""``notirouter worker``: routing and delivery without the HTTP receiver.

Run as many as the sinks need, on any host that reaches the queue's database; receivers
started with ``serve --no-workers`` take the events in.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any

from notirouter.cli.common import EXIT_CONFIG, EXIT_OK, add_config_option, load, run_command
from notirouter.logs import configure_logging
from notirouter.queue.protocol import QueueUnavailable
from notirouter.reload import reloading
from notirouter.runtime import Runtime

log = logging.getLogger("notirouter")


def add_commands(commands: Any) -> None:
    """Register ``worker``."""
    worker = commands.add_parser(
        "worker",
        help="run the routing workers and sink dispatchers, without HTTP",
        description="Route and deliver the events in the queue until SIGINT/SIGTERM.",
    )
    add_config_option(worker)
    worker.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    worker.set_defaults(handler=run_command(worker_command))


def worker_command(args: argparse.Namespace) -> int:
    """Run until SIGINT/SIGTERM."""
    config = load(args)
    configure_logging(args.log_level, config.secrets)
    return asyncio.run(_work(Runtime(config)))


async def _work(runtime: Runtime) -> int:
    try:
        await runtime.start()
    except QueueUnavailable as exc:
        log.error("%s", exc)
        await runtime.stop()
        return EXIT_CONFIG
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    log.info(
        "notirouter worker running (queue %s; sinks: %s)",
        runtime.queue.backend,
        ", ".join(runtime.sinks) or "none",
    )
    try:
        async with reloading(runtime):  # SIGHUP reads the config again
            await stop.wait()
    finally:
        log.info("notirouter worker stopping")
        await runtime.stop()
    return EXIT_OK
