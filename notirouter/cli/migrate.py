"""``notirouter migrate``: bring the queue's schema up to this version of notirouter.

``serve`` and ``worker`` migrate at start too; this runs the step on its own, before a rollout
(a database written by a newer notirouter is refused, never changed).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from notirouter.cli.common import (
    EXIT_CONFIG,
    EXIT_OK,
    CommandFailed,
    add_config_option,
    run_command,
)
from notirouter.config.errors import ConfigError
from notirouter.config.loader import default_config_path, load_queue_config
from notirouter.queue.factory import queue_for
from notirouter.queue.protocol import QueueUnavailable


def add_commands(commands: Any) -> None:
    """Register ``migrate``."""
    migrate = commands.add_parser(
        "migrate",
        help="create or upgrade the queue's schema",
        description="Create the queue, or apply the schema migrations it lacks, and say which "
        "version it is at. Reads only the queue: section of the config.",
    )
    add_config_option(migrate)
    migrate.set_defaults(handler=run_command(migrate_command))


def migrate_command(args: argparse.Namespace) -> int:
    """Migrate and report the schema version."""
    path = args.config or default_config_path()
    try:
        settings = load_queue_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        raise CommandFailed(f"cannot read the queue settings in {path}", EXIT_CONFIG) from None

    async def run() -> int:
        queue = queue_for(settings)
        await queue.open(create=True)
        try:
            return await queue.schema_version()
        finally:
            await queue.close()

    try:
        version = asyncio.run(run())
    except QueueUnavailable as exc:
        raise CommandFailed(str(exc), EXIT_CONFIG) from None
    print(f"queue ({settings.backend}) at schema version {version}")
    return EXIT_OK
