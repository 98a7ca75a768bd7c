"""Shared fixtures: loopback servers, config files, plugin-built sinks."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from notirouter.api.http import HttpClient
from notirouter.api.manager import collect_types, make_plugin_manager
from notirouter.api.sink import Sink, SinkContext
from tests.backends import postgres_backend, postgres_database, postgres_server, queue_backend
from tests.loopback import LoopbackServer

TOKEN = "test-token-0123456789abcdef"
# Fixtures defined elsewhere, registered here for every test module.
__all__ = ["postgres_backend", "postgres_database", "postgres_server", "queue_backend"]


@pytest.fixture
async def loopback() -> AsyncIterator[LoopbackServer]:
    """A scripted HTTP server on 127.0.0.1 (answers 200 ``ok`` unless told otherwise)."""
    server = LoopbackServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def second_loopback() -> AsyncIterator[LoopbackServer]:
    """Another scripted HTTP server, for a second service (a failing sink, the Sekoia.io API)."""
    server = LoopbackServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def http_client() -> AsyncIterator[HttpClient]:
    """The real shared HTTP client, as the core hands it to sinks."""
    client = HttpClient()
    await client.start()
    yield client
    await client.aclose()


@pytest.fixture
def make_sink(http_client: HttpClient) -> Callable[..., Sink[Any]]:
    """Build a sink of a registered type from an options mapping, as the config would."""
    types = collect_types(make_plugin_manager())

    def build(type_name: str, name: str = "under-test", **options: Any) -> Sink[Any]:
        cls = types.sinks[type_name]
        validated = cls.Options.model_validate({"type": type_name, **options})
        return cls(name, validated, SinkContext(name=name, http=http_client))

    return build


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    """Write a YAML config (dedented) into a temporary directory and return its path."""

    def write(text: str, name: str = "notirouter.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write
