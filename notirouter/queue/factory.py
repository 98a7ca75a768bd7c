"""Pick the queue backend the config names (``queue.backend``)."""

from __future__ import annotations

from notirouter.config.models import QueueConfig
from notirouter.queue.protocol import Queue
from notirouter.queue.sqlite.writer import QueueUnavailable


def queue_for(settings: QueueConfig) -> Queue:
    """The backend for ``settings``, not yet opened."""
    if settings.backend == "postgres":
        try:
            # Imported here: the PostgreSQL driver is an optional extra, SQLite needs nothing.
            from notirouter.queue.postgres.queue import PostgresQueue
        except ImportError as exc:
            raise QueueUnavailable(
                f"queue.backend postgres needs the PostgreSQL driver ({exc.name} is not "
                "installed): pip install 'notirouter[postgres]'"
            ) from None
        return PostgresQueue.from_settings(settings)
    from notirouter.queue.sqlite.backend import SqliteBackend

    return SqliteBackend(
        settings.path,
        synchronous=settings.synchronous,
        dedupe_window=settings.dedupe_window,
        busy_timeout=settings.busy_timeout,
    )


async def open_queue(settings: QueueConfig, *, create: bool = True) -> Queue:
    """The backend for ``settings``, opened (schema migrated forward; see ``Queue.open``)."""
    queue = queue_for(settings)
    await queue.open(create=create)
    return queue
