"""Silences on PostgreSQL: the ``silences`` table, shared by every process.

Every serving process reads the active silences again at most a second after a change
(notirouter.routing.silences): one small indexed query per second, only while events flow.
"""

from __future__ import annotations

import json
import time

import asyncpg

from notirouter.queue.postgres import dead_letters
from notirouter.queue.postgres.connection import unavailable
from notirouter.queue.records import StoredSilence
from notirouter.queue.sqlite.silences import new_silence_id, silence_of

_COLUMNS = "id, matchers, created_at, ends_at, comment, author, expired_at"


class PostgresSilences:
    """:class:`~notirouter.queue.protocol.SilenceStore` in the shared database."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

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
        with unavailable("add a silence"):
            await self.pool.execute(
                f"INSERT INTO silences ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, NULL)",  # noqa: S608
                silence.id,
                json.dumps(matchers, ensure_ascii=False),
                silence.created_at,
                ends_at,
                comment,
                author,
            )
        return silence

    async def listing(self, *, include_expired: bool = False) -> list[StoredSilence]:
        """Active silences (and expired ones on request), oldest first."""
        where = "" if include_expired else " WHERE ends_at > $1"
        params = () if include_expired else (time.time(),)
        with unavailable("read the silences"):
            rows = await self.pool.fetch(
                f"SELECT {_COLUMNS} FROM silences{where} ORDER BY created_at, id",  # noqa: S608
                *params,
            )
        return [silence_of(tuple(row)) for row in rows]

    async def expire(self, silence_id: str) -> StoredSilence | None:
        """End a silence now; ``None``: no such silence."""
        now = time.time()
        with unavailable("expire a silence"):
            async with self.pool.acquire() as connection, connection.transaction():
                await connection.execute(
                    "UPDATE silences SET ends_at = $1, expired_at = $1"
                    " WHERE id = $2 AND ends_at > $1",
                    now,
                    silence_id,
                )
                row = await connection.fetchrow(
                    f"SELECT {_COLUMNS} FROM silences WHERE id = $1",  # noqa: S608
                    silence_id,
                )
        return None if row is None else silence_of(tuple(row))

    async def prune(self, older_than: float) -> int:
        """Forget silences that ended over ``older_than`` seconds ago."""
        with unavailable("prune silences"):
            status = await self.pool.execute(
                "DELETE FROM silences WHERE ends_at < $1", time.time() - older_than
            )
        return dead_letters.affected(status)
