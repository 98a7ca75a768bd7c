"""``notirouter check``: validate the config, and with ``--connect`` reach the queue."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from notirouter.cli.actions_check import write_access_lines
from notirouter.cli.common import (
    EXIT_CONFIG,
    EXIT_OK,
    CommandFailed,
    add_config_option,
    load,
    run_command,
)
from notirouter.cli.conversation_check import conversation_lines
from notirouter.config.models import QueueConfig
from notirouter.operations.self_routing import self_routing_warnings
from notirouter.queue.factory import queue_for
from notirouter.queue.protocol import QueueUnavailable


def describe_queue(settings: QueueConfig) -> str:
    """``sqlite at PATH`` or ``postgres at URL`` (the URL without its password)."""
    if settings.backend == "postgres" and settings.url is not None:
        from notirouter.queue.postgres.connection import shown_url

        return f"postgres at {shown_url(settings.url.get_secret_value())}"
    return f"{settings.backend} at {settings.path}"


def reach_queue(settings: QueueConfig) -> str:
    """Open the existing queue and return its schema version; fail with exit 1 otherwise."""

    async def run() -> str:
        queue = queue_for(settings)
        await queue.open(create=False)
        try:
            problem = await queue.readiness()
            if problem is not None:
                raise QueueUnavailable(problem)
            return f"schema version {await queue.schema_version()}"
        finally:
            await queue.close()

    try:
        return asyncio.run(run())
    except QueueUnavailable as exc:
        raise CommandFailed(f"cannot reach the queue: {exc}", EXIT_CONFIG) from None


def add_commands(commands: Any) -> None:
    """Register ``check``."""
    check = commands.add_parser(
        "check",
        help="validate the config",
        description="Validate the config: exit 0 with a summary, or 1 with file:line:col errors.",
    )
    add_config_option(check)
    check.add_argument(
        "--connect",
        action="store_true",
        help="also open the queue, and ask whether action enrichers' keys may write",
    )
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
    for warning in self_routing_warnings(config.routes, app.sinks):
        print(f"{config.path}: warning: {warning}")
    for line in conversation_lines(config):
        print(line)
    if args.connect:
        print(f"queue reached: {reach_queue(app.queue)}")
        for line in write_access_lines(config):
            print(line)
    return EXIT_OK


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"
