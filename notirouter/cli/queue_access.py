"""Open the configured queue for an operator command, read-only in spirit.

These commands read only the ``queue:`` section of the config (an operator need not have every
sink's secret in the environment) and open the queue without creating it: a wrong path says
so instead of showing an empty queue.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from notirouter.cli.common import EXIT_CONFIG, CommandFailed
from notirouter.config.errors import ConfigError
from notirouter.config.loader import default_config_path, load_queue_config
from notirouter.queue.factory import open_queue
from notirouter.queue.protocol import Queue, QueueUnavailable

T = TypeVar("T")


def with_queue(args: argparse.Namespace, work: Callable[[Queue], Awaitable[T]]) -> T:
    """Run ``work`` on the opened queue of ``args.config``; exit code 1 if it cannot be read."""
    path = args.config or default_config_path()
    try:
        settings = load_queue_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        raise CommandFailed(f"cannot read the queue settings in {path}", EXIT_CONFIG) from None

    async def run() -> T:
        queue = await open_queue(settings, create=False)
        try:
            return await work(queue)
        finally:
            await queue.close()

    setting = "queue.url" if settings.backend == "postgres" else "queue.path"
    try:
        return asyncio.run(run())
    except (QueueUnavailable, FileNotFoundError) as exc:
        raise CommandFailed(f"{exc} ({setting} in {path})", EXIT_CONFIG) from None


def timestamp(seconds: float | None) -> str | None:
    """Epoch seconds as UTC ISO 8601 with milliseconds (``None`` stays ``None``)."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
