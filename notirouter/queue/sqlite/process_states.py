"""Serving processes' reports on SQLite: the ``process_states`` table of the queue file."""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING

from notirouter.queue.inspection_records import ProcessReport

if TYPE_CHECKING:
    from notirouter.queue.sqlite.queue import SqliteQueue

# A report expired this long ago is of no use even for "it stopped reporting at ...".
FORGET_AFTER_SECONDS = 86400.0


class SqliteProcessStates:
    """:class:`~notirouter.queue.protocol.ProcessStates` in the queue file."""

    def __init__(self, queue: SqliteQueue) -> None:
        self.queue = queue

    async def publish(self, report: ProcessReport) -> None:
        """Store or replace ``report``; forget reports expired for over a day."""

        def write(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT INTO process_states (process_id, host, pid, started_at, reported_at,"
                " expires_at, state) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (process_id)"
                " DO UPDATE SET reported_at = excluded.reported_at,"
                " expires_at = excluded.expires_at, state = excluded.state",
                (
                    report.process_id,
                    report.host,
                    report.pid,
                    report.started_at,
                    report.reported_at,
                    report.expires_at,
                    report.state,
                ),
            )
            c.execute(
                "DELETE FROM process_states WHERE expires_at < ?",
                (time.time() - FORGET_AFTER_SECONDS,),
            )

        await self.queue.write(write)

    async def withdraw(self, process_id: str) -> None:
        """Delete the report of ``process_id``."""
        await self.queue.write(
            lambda c: c.execute("DELETE FROM process_states WHERE process_id = ?", (process_id,))
        )

    async def reports(self) -> list[ProcessReport]:
        """Every stored report, oldest process first."""
        rows = await self.queue.read(
            lambda c: c.execute(
                "SELECT process_id, host, pid, started_at, reported_at, expires_at, state"
                " FROM process_states ORDER BY started_at, process_id"
            ).fetchall()
        )
        return [ProcessReport(*row) for row in rows]
