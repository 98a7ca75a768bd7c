"""Connecting to PostgreSQL: the pool, the URL as shown, and driver errors as queue errors.

Driver chosen: asyncpg. On this machine's PostgreSQL 15, on the claim path (claim with
``FOR UPDATE SKIP LOCKED`` under a lease, then a lease-guarded completion; 8 loops, 8 pooled
connections), asyncpg did 2.2-2.6x the jobs/s of psycopg 3 (``bench/pg_drivers.py``; figures
in README "Deployment"), and it has typed stubs for ``mypy --strict``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from urllib.parse import urlsplit

import asyncpg

from notirouter.queue.postgres.schema import SCHEMA_NAME
from notirouter.queue.writer import QueueUnavailable

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


async def create_pool(url: str, size: int, timeout: float) -> asyncpg.Pool:
    """A pool of at most ``size`` connections with the queue's schema on the search path."""
    with unavailable("connect"):
        pool = await asyncpg.create_pool(
            url,
            min_size=1,
            max_size=size,
            timeout=timeout,
            command_timeout=max(timeout, 30.0),
            server_settings={"search_path": SCHEMA_NAME, "application_name": "notirouter"},
        )
    assert pool is not None
    return pool
