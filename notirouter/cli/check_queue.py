"""What ``notirouter check`` says about the queue, and ``check --connect`` reaching it."""

from __future__ import annotations

import asyncio

from notirouter.cli.common import EXIT_CONFIG, CommandFailed
from notirouter.config.models import QueueConfig
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
