"""Silences on SQLite: the ``silences`` table of the queue file.

``notirouter silence add`` writes from its own process while ``serve`` runs: SQLite's file
lock serialises the two writers (``busy_timeout``), and the serving process reads the active
silences again at most a second later (notirouter.routing.silences).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from typing import TYPE_CHECKING, Any

from notirouter.queue.records import StoredSilence

if TYPE_CHECKING:
    from notirouter.queue.sqlite.queue import SqliteQueue

_COLUMNS = "id, matchers, created_at, ends_at, comment, author, expired_at"


def silence_of(row: Any) -> StoredSilence:
    """A row of ``silences`` (either backend) as a record."""
    matchers = tuple((str(n), str(o), str(v)) for n, o, v in json.loads(row[1]))
    return StoredSilence(row[0], matchers, row[2], row[3], row[4], row[5], row[6])


def new_silence_id() -> str:
    """A short random id, easy to copy into ``silence expire``."""
    return secrets.token_hex(8)


class SqliteSilences:
    """:class:`~notirouter.queue.protocol.SilenceStore` in the queue file."""

    def __init__(self, queue: SqliteQueue) -> None:
        self.queue = queue

    async def add(
        self,
        matchers: tuple[tuple[str, str, str], ...],
        *,
        ends_at: float,
        comment: str,
        author: str,
    ) -> StoredSilence:
        """Store a new silence, active from now until ``ends_at``."""
        silence = StoredSilence(new_silence_id(), matchers, time.time(), ends_at, comment, author)

        def write(c: sqlite3.Connection) -> None:
            c.execute(
                f"INSERT INTO silences ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, NULL)",  # noqa: S608
                (
                    silence.id,
                    json.dumps(matchers, ensure_ascii=False),
                    silence.created_at,
                    ends_at,
                    comment,
                    author,
                ),
            )

        await self.queue.write(write)
        return silence

    async def listing(self, *, include_expired: bool = False) -> list[StoredSilence]:
        """Active silences (and expired ones on request), oldest first."""
        where = "" if include_expired else " WHERE ends_at > ?"
        params = () if include_expired else (time.time(),)
        rows = await self.queue.read(
            lambda c: c.execute(
                f"SELECT {_COLUMNS} FROM silences{where} ORDER BY created_at, id",  # noqa: S608
                params,
            ).fetchall()
        )
        return [silence_of(row) for row in rows]

    async def expire(self, silence_id: str) -> StoredSilence | None:
        """End a silence now; ``None``: no such silence."""

        def write(c: sqlite3.Connection) -> Any:
            now = time.time()
            c.execute(
                "UPDATE silences SET ends_at = ?, expired_at = ? WHERE id = ? AND ends_at > ?",
                (now, now, silence_id, now),
            )
            return c.execute(
                f"SELECT {_COLUMNS} FROM silences WHERE id = ?",  # noqa: S608
                (silence_id,),
            ).fetchone()

        row = await self.queue.write(write)
        return None if row is None else silence_of(row)

    async def prune(self, older_than: float) -> int:
        """Forget silences that ended over ``older_than`` seconds ago."""

        def write(c: sqlite3.Connection) -> int:
            cutoff = time.time() - older_than
            return int(c.execute("DELETE FROM silences WHERE ends_at < ?", (cutoff,)).rowcount)

        pruned: int = await self.queue.write(write)
        return pruned
