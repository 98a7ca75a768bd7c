"""Reconciliation state on PostgreSQL: streams (watermark and poller lease) and changes seen.

The lease is a row, renewed by its holder and taken over only once it ran out, so of several
processes one polls each stream; a commit is guarded by the lease in its own transaction, so a
poller that lost it (paused past its lease) writes nothing. The unique ``change_key`` makes
two transactions claiming one change agree: the second waits for the first, then sees it.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from notirouter.queue.postgres import dead_letters
from notirouter.queue.postgres.connection import unavailable
from notirouter.queue.records import NewChange

HOLD = (
    "INSERT INTO reconcile_streams AS s (stream, holder, lease_until) VALUES ($1, $2, $3)"
    " ON CONFLICT (stream) DO UPDATE SET holder = excluded.holder,"
    " lease_until = excluded.lease_until WHERE s.holder = excluded.holder OR s.lease_until < $4"
    " RETURNING holder"
)
CLAIM_CHANGE = (
    "INSERT INTO seen_changes (change_key, event_id, origin, seen_at) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT (change_key) DO NOTHING RETURNING 1"
)
RECONCILE = "reconcile"
WEBHOOK = "webhook"


async def claim_change(
    connection: asyncpg.Connection | PoolConnectionProxy,
    key: str,
    event_id: str,
    now: float,
    origin: str,
) -> str | None:
    """Record ``key`` as notified by ``event_id`` from ``origin`` (in the caller's
    transaction); ``None`` if it was not seen before, else the origin that saw it first.

    A concurrent claim of the same key waits for the first transaction, then sees its row."""
    if await connection.fetchval(CLAIM_CHANGE, key, event_id, origin, now):
        return None
    found = await connection.fetchval("SELECT origin FROM seen_changes WHERE change_key = $1", key)
    return origin if found is None else str(found)


class PostgresChanges:
    """:class:`~notirouter.queue.protocol.ChangeLedger` in the shared database."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def hold(self, stream: str, holder: str, seconds: float) -> bool:
        """Take or renew the lease on polling ``stream``; ``False``: another holder has it."""
        now = time.time()
        with unavailable("take the reconciliation lease"):
            found = await self.pool.fetchval(HOLD, stream, holder, now + seconds, now)
        return bool(found == holder)

    async def release(self, stream: str, holder: str) -> None:
        """Give the lease up (at shutdown), so another process takes over at once."""
        with unavailable("release the reconciliation lease"):
            await self.pool.execute(
                "UPDATE reconcile_streams SET lease_until = 0 WHERE stream = $1 AND holder = $2",
                stream,
                holder,
            )

    async def watermark(self, stream: str) -> float | None:
        """Up to when ``stream``'s changes are committed (``None``: never polled)."""
        with unavailable("read the reconciliation watermark"):
            found = await self.pool.fetchval(
                "SELECT watermark FROM reconcile_streams WHERE stream = $1", stream
            )
        return None if found is None else float(found)

    async def commit(
        self, stream: str, holder: str, changes: Sequence[NewChange], watermark: float
    ) -> list[str] | None:
        """Enqueue the changes not seen yet and move the watermark, in one transaction.

        Returns the keys enqueued; ``None`` (and nothing written) when ``holder`` no longer
        holds the stream's lease.
        """
        now = time.time()
        with unavailable("store reconciled changes"):
            async with self.pool.acquire() as connection, connection.transaction():
                # The row lock taken here holds off a takeover until this commits.
                held = await connection.fetchval(
                    "UPDATE reconcile_streams SET watermark = GREATEST(COALESCE(watermark, $1), $1)"
                    " WHERE stream = $2 AND holder = $3 AND lease_until >= $4 RETURNING 1",
                    watermark,
                    stream,
                    holder,
                    now,
                )
                if not held:
                    return None
                enqueued = []
                for change in changes:
                    event_id = secrets.token_hex(16)
                    if (
                        await claim_change(connection, change.key, event_id, now, RECONCILE)
                        is not None
                    ):
                        continue
                    await connection.execute(
                        "INSERT INTO events (id, dedupe_key, hook, source, received_at, body,"
                        " next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $5)",
                        event_id,
                        f"reconcile:{event_id}",
                        change.hook,
                        change.source,
                        now,
                        change.body,
                    )
                    enqueued.append(change.key)
                if enqueued:
                    await connection.execute("SELECT pg_notify('notirouter', 'events')")
        return enqueued

    async def prune(self, older_than: float) -> int:
        """Forget changes seen more than ``older_than`` seconds ago."""
        with unavailable("prune seen changes"):
            status = await self.pool.execute(
                "DELETE FROM seen_changes WHERE seen_at < $1", time.time() - older_than
            )
        return dead_letters.affected(status)
