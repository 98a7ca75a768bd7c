"""Connecting to PostgreSQL: the pool, the URL as shown, and driver errors as queue errors.

Driver chosen: asyncpg. On the claim path (claim with ``FOR UPDATE SKIP LOCKED`` under a
lease, then a lease-guarded completion per job; 8 loops on 8 pooled connections; PostgreSQL 15
on this project's shared 2-CPU machine; ``bench/pg_drivers.py``, medians of 5 alternating
runs), asyncpg with the pool below spent 294 us of client CPU per job against psycopg 3's 419
at one job per claim, and 124 against 163 at 32 per claim; throughput was level within the
machine's noise (1,052 against 951 jobs/s, and 4,608 against 4,509). With asyncpg's default
pool, which sends a reset query on every release, it was the slowest of the three (457 us,
785 jobs/s): hence ``reset=_keep_session``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from urllib.parse import urlsplit

import asyncpg

from notirouter.queue.coalescer import BatchRefused
from notirouter.queue.postgres.schema import SCHEMA_NAME
from notirouter.queue.sqlite.writer import QueueUnavailable

# What a lost or refused connection raises: the server gone (OSError), a connection the
# server ended (PostgresConnectionError, AdminShutdown), one the driver closed (InterfaceError),
# or a pool that found no connection in time (TimeoutError).
DRIVER_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def shown_url(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{user}{parts.hostname or ''}{port}{parts.path}"


@contextlib.contextmanager
def unavailable(doing: str) -> Iterator[None]:
    """Turn a driver error while ``doing`` something into :class:`QueueUnavailable`."""
    try:
        yield
    except DRIVER_ERRORS as exc:
        reason = str(exc) or type(exc).__name__
        raise QueueUnavailable(f"PostgreSQL: cannot {doing}: {reason}") from exc


@contextlib.contextmanager
def refused_items(size: int) -> Iterator[None]:
    """In a batch of several, PostgreSQL refusing a value (a text it cannot encode or store,
    a constraint) is one item's fault: :class:`BatchRefused`, so the items are written one by
    one. Alone, it stays the queue error it always was."""
    try:
        yield
    except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as exc:
        if size > 1:
            raise BatchRefused(str(exc)) from exc
        raise


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Release without asyncpg's reset query (``RESET ALL; UNLISTEN *; ...``).

    The queue's pooled connections keep no session state (no LISTEN, no session locks or
    settings; an open transaction is still rolled back), and the reset would cost a round
    trip on every release, that is on every queue operation.
    """


async def create_pool(url: str, size: int, timeout: float) -> asyncpg.Pool:
    """A pool of at most ``size`` connections with the queue's schema on the search path."""
    with unavailable("connect"):
        pool = await asyncpg.create_pool(
            url,
            min_size=1,
            max_size=size,
            timeout=timeout,
            command_timeout=max(timeout, 30.0),
            reset=_keep_session,
            server_settings={"search_path": SCHEMA_NAME, "application_name": "notirouter"},
        )
    assert pool is not None
    return pool
