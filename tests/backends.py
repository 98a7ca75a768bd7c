"""The queue backends the behaviour tests run on: SQLite always, PostgreSQL when it is there.

PostgreSQL tests read ``NOTIROUTER_TEST_POSTGRES_URL`` (a server where the user may create
databases). Several people run the suite at once on one server, so each run creates its own
uniquely named database and drops it at the end; each test starts on empty tables. Without
the variable, or with the server unreachable, the test calls ``service_missing`` (a skip on a
bare machine, a failure in CI).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from notirouter.config.models import QueueConfig
from notirouter.queue.factory import queue_for
from notirouter.queue.protocol import Queue
from tests.services import service_missing

POSTGRES_ENV = "NOTIROUTER_TEST_POSTGRES_URL"
T = TypeVar("T")


def in_thread(work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work`` on its own event loop in a thread (sync fixtures, outside the test loop)."""
    found: list[T] = []
    failed: list[BaseException] = []

    def target() -> None:
        try:
            found.append(asyncio.run(work()))  # type: ignore[arg-type]
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(60)
    if failed:
        raise failed[0]
    return found[0]


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name``."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


class PostgresServer:
    """The test server: creates and drops uniquely named databases."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.created: list[str] = []

    def create_database(self) -> str:
        """A new empty database; its URL."""
        name = f"notirouter_test_{os.getpid()}_{secrets.token_hex(4)}"

        async def create() -> None:
            connection = await asyncpg.connect(self.admin_url, timeout=5)
            try:
                await connection.execute(f'CREATE DATABASE "{name}"')
            finally:
                await connection.close()

        in_thread(create)
        self.created.append(name)
        return with_database(self.admin_url, name)

    def drop_all(self) -> None:
        """Drop every database this run created (ending any session still on them)."""

        async def drop() -> None:
            connection = await asyncpg.connect(self.admin_url, timeout=5)
            try:
                for name in self.created:
                    await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await connection.close()

        if self.created:
            in_thread(drop)


def _reachable(url: str) -> str | None:
    async def probe() -> None:
        connection = await asyncpg.connect(url, timeout=3)
        await connection.close()

    try:
        in_thread(probe)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"PostgreSQL at {url} unreachable: {exc}"
    return None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer | str]:
    """The server, or why there is none (reported by the tests that need it)."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        yield f"{POSTGRES_ENV} is not set"
        return
    problem = _reachable(url)
    if problem:
        yield problem
        return
    server = PostgresServer(url)
    yield server
    server.drop_all()


def need_postgres(server: PostgresServer | str) -> PostgresServer:
    """The server, or skip (fail in CI) with the reason."""
    if isinstance(server, str):
        service_missing(server)
    return server


@pytest.fixture(scope="session")
def postgres_database(postgres_server: PostgresServer | str) -> str | None:
    """One database for this run's shared-backend tests (``None``: no server)."""
    if isinstance(postgres_server, str):
        return None
    return postgres_server.create_database()


@dataclass
class Backend:
    """A queue backend under test: its settings, as a config's ``queue:`` and as objects."""

    name: str
    settings: QueueConfig

    def make(self, **overrides: Any) -> Queue:
        """A new queue (not yet opened) on this backend, with settings overridden."""
        return queue_for(self.settings.model_copy(update=overrides))

    def yaml(self) -> str:
        """The ``queue:`` section as a YAML flow mapping."""
        if self.settings.backend == "postgres":
            assert self.settings.url is not None
            return f'{{backend: postgres, url: "{self.settings.url.get_secret_value()}"}}'
        return f'{{path: "{self.settings.path}"}}'


async def _empty(url: str) -> None:
    # The whole schema goes: each test starts from a database no notirouter has touched.
    connection = await asyncpg.connect(url, timeout=5)
    try:
        await connection.execute("DROP SCHEMA IF EXISTS notirouter CASCADE")
    finally:
        await connection.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def queue_backend(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    postgres_server: PostgresServer | str,
    postgres_database: str | None,
) -> AsyncIterator[Backend]:
    """Each backend in turn, empty."""
    if request.param == "sqlite":
        yield Backend("sqlite", QueueConfig(path=str(tmp_path / "q.db")))
        return
    need_postgres(postgres_server)
    assert postgres_database is not None
    await _empty(postgres_database)
    yield Backend(
        "postgres", QueueConfig.model_validate({"backend": "postgres", "url": postgres_database})
    )


def through_port(url: str, port: int) -> str:
    """``url`` with its host and port replaced by 127.0.0.1:``port`` (a proxy in front)."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    if parts.password:
        user = f"{parts.username}:{parts.password}@"
    return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{port}"))


@pytest.fixture
async def postgres_backend(
    postgres_server: PostgresServer | str, postgres_database: str | None
) -> Backend:
    """The PostgreSQL backend alone (tests of what only a shared backend does), empty."""
    need_postgres(postgres_server)
    assert postgres_database is not None
    await _empty(postgres_database)
    return Backend(
        "postgres", QueueConfig.model_validate({"backend": "postgres", "url": postgres_database})
    )
