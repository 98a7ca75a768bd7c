"""Wake-ups across processes: ``LISTEN notirouter``, with reconnection.

Every commit that adds work sends ``NOTIFY notirouter, '<key>'`` in its transaction, so every
process's loops for that key wake when it commits. Notifications sent while the listening
connection was down are lost: on reconnecting, every loop is woken to look for itself, and
the claim loop's slow idle re-check covers the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import asyncpg

from notirouter.queue.postgres.connection import DRIVER_ERRORS

log = logging.getLogger("notirouter.queue")
CHANNEL = "notirouter"
RECONNECT_SECONDS = 1.0


class Listener:
    """Keeps one connection listening and hands each notified key to ``on_keys``."""

    def __init__(
        self,
        url: str,
        timeout: float,
        on_keys: Callable[[set[str]], None],
        wake_all: Callable[[], None],
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.on_keys = on_keys
        self.wake_all = wake_all
        self._connection: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()

    async def start(self) -> None:
        """Listen now (raising if the database is unreachable), then keep listening."""
        await self._connect()
        self._task = asyncio.create_task(self._keep_listening(), name="notirouter listener")

    async def _connect(self) -> None:
        connection = await asyncpg.connect(self.url, timeout=self.timeout)
        connection.add_termination_listener(lambda _: self._lost.set())
        await connection.add_listener(CHANNEL, self._notified)
        self._lost.clear()
        self._connection = connection

    def _notified(
        self,
        connection: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy,
        pid: int,
        channel: str,
        payload: object,
    ) -> None:
        self.on_keys({str(payload)})

    async def _keep_listening(self) -> None:
        while True:
            await self._lost.wait()
            log.warning("queue: lost the PostgreSQL notification connection, reconnecting")
            while True:
                try:
                    await self._connect()
                    break
                except DRIVER_ERRORS:
                    await asyncio.sleep(RECONNECT_SECONDS)
            self.wake_all()  # notifications sent meanwhile are lost

    async def stop(self) -> None:
        """Stop listening and close the connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._connection is not None and not self._connection.is_closed():
            with contextlib.suppress(*DRIVER_ERRORS):
                await self._connection.close(timeout=2)
