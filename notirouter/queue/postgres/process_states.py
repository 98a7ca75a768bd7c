"""Serving processes' reports on PostgreSQL: the ``process_states`` table, one row per process
on any host."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from notirouter.queue.inspection_records import ProcessReport
from notirouter.queue.postgres.connection import unavailable

if TYPE_CHECKING:
    from notirouter.queue.postgres.queue import PostgresQueue

# A report expired this long ago is of no use even for "it stopped reporting at ...".
FORGET_AFTER_SECONDS = 86400.0


class PostgresProcessStates:
    """:class:`~notirouter.queue.protocol.ProcessStates` in the shared database."""

    def __init__(self, queue: PostgresQueue) -> None:
        self.queue = queue  # its pool is taken at each call: built before the queue opens

    async def publish(self, report: ProcessReport) -> None:
        """Store or replace ``report``; forget reports expired for over a day."""
        with unavailable("publish this process's state"):
            async with self.queue.pool.acquire() as connection, connection.transaction():
                await connection.execute(
                    "INSERT INTO process_states (process_id, host, pid, started_at, reported_at,"
                    " expires_at, state) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                    " ON CONFLICT (process_id) DO UPDATE SET reported_at = excluded.reported_at,"
                    " expires_at = excluded.expires_at, state = excluded.state",
                    report.process_id,
                    report.host,
                    report.pid,
                    report.started_at,
                    report.reported_at,
                    report.expires_at,
                    report.state,
                )
                await connection.execute(
                    "DELETE FROM process_states WHERE expires_at < $1",
                    time.time() - FORGET_AFTER_SECONDS,
                )

    async def withdraw(self, process_id: str) -> None:
        """Delete the report of ``process_id``."""
        with unavailable("withdraw this process's state"):
            await self.queue.pool.execute(
                "DELETE FROM process_states WHERE process_id = $1", process_id
            )

    async def reports(self) -> list[ProcessReport]:
        """Every stored report, oldest process first."""
        with unavailable("read the processes' states"):
            rows = await self.queue.pool.fetch(
                "SELECT process_id, host, pid, started_at, reported_at, expires_at, state"
                " FROM process_states ORDER BY started_at, process_id"
            )
        return [ProcessReport(*row) for row in rows]
