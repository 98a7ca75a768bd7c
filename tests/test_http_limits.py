"""Hostile clients on raw loopback sockets: header sizes, deadlines, and the connection cap.

Each test talks to the real receiver (uvicorn with notirouter's protocol, as ``serve`` runs it)
through raw sockets, because the misbehaviour under test is exactly what an HTTP client
library would never do: endless headers, silence, bytes trickled one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from notirouter.config.errors import ConfigError
from notirouter.config.loader import load_config
from tests.conftest import TOKEN
from tests.serving import Served, serve

CHUNK = b"a" * 65536
EVENT = json.dumps({"type": "alert", "action": "created", "metadata": {"uuid": "e1"}}).encode()


def config_text(db: Path, **server: object) -> str:
    settings = ", ".join(f"{key}: {value}" for key, value in server.items())
    return f"""
server: {{{settings}}}
hooks:
  - {{name: sekoia, token: {TOKEN}, source: sekoia}}
queue: {{path: "{db}"}}
sinks:
  console: {{type: log}}
routes:
  - {{name: all, sinks: [console]}}
"""


@contextlib.asynccontextmanager
async def served_with(
    tmp_path: Path, write_config: Callable[..., Path], **server: object
) -> AsyncIterator[Served]:
    async with serve(write_config(config_text(tmp_path / "queue.db", **server))) as running:
        yield running


def port_of(served: Served) -> int:
    return int(served.url.rsplit(":", 1)[1])


async def connect(served: Served) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port_of(served))


async def read_answer(reader: asyncio.StreamReader, timeout: float = 10) -> bytes:
    """Everything the server sends until it closes the connection."""
    async with asyncio.timeout(timeout):
        return await reader.read()


async def healthz(served: Served) -> int:
    async with aiohttp.ClientSession() as client, client.get(f"{served.url}/healthz") as reply:
        return reply.status


async def flood_header(served: Served, limit: int) -> tuple[int, bytes]:
    """Stream one endless header (at most ``limit`` bytes); what was sent, what came back."""
    reader, writer = await connect(served)
    answer = asyncio.create_task(read_answer(reader, timeout=30))
    writer.write(b"POST /hooks/" + TOKEN.encode() + b" HTTP/1.1\r\nHost: t\r\nX-Flood: ")
    sent = 0
    with contextlib.suppress(OSError):
        while sent < limit and not answer.done():
            writer.write(CHUNK)
            sent += len(CHUNK)
            await writer.drain()
            await asyncio.sleep(0)  # let the reader see an answer as soon as there is one
    received = b""
    with contextlib.suppress(OSError):
        received = await answer
    writer.close()
    return sent, received


async def test_endless_headers_get_431_and_healthz_still_answers(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    flood_bytes = 16 * 1_048_576
    async with served_with(tmp_path, write_config) as served:
        floods = [asyncio.create_task(flood_header(served, flood_bytes)) for _ in range(2)]
        # While both connections stream, the event loop still serves everyone else.
        assert await asyncio.wait_for(healthz(served), timeout=10) == 200
        results = await asyncio.gather(*floods)
        assert await healthz(served) == 200
    for sent, received in results:
        assert received.startswith(b"HTTP/1.1 431 "), received[:200]
        assert b"request line and headers larger than 32768 bytes" in received
        # The server stopped reading long before the flood ran out: it does not keep the bytes.
        assert sent < flood_bytes


async def test_one_header_over_the_limit_gets_431_one_under_it_is_served(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    async with served_with(tmp_path, write_config, max_header_bytes=4096) as served:
        reader, writer = await connect(served)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"b" * 5000 + b"\r\n\r\n")
        answer = await read_answer(reader)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
        assert b"a header is larger than 4096 bytes" in answer

        reader, writer = await connect(served)
        writer.write(
            b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-Big: "
            + b"b" * 4000
            + b"\r\n\r\n"
        )
        answer = await read_answer(reader)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]


async def test_silent_connections_are_closed_after_the_idle_timeout(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    async with served_with(tmp_path, write_config, idle_timeout=0.5) as served:
        silent = [await connect(served) for _ in range(20)]
        # One that made a request and kept the connection: closed the same way afterwards.
        reader, writer = await connect(served)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        first = await asyncio.wait_for(reader.readuntil(b'{"status":"ok"}'), timeout=5)
        assert first.startswith(b"HTTP/1.1 200 ")
        silent.append((reader, writer))
        for reader, writer in silent:
            assert await read_answer(reader, timeout=5) == b""  # closed, nothing said
            writer.close()


async def test_trickled_headers_get_408_after_the_header_deadline(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    async with served_with(tmp_path, write_config, header_timeout=0.5) as served:
        reader, writer = await connect(served)
        answer = asyncio.create_task(read_answer(reader))
        writer.write(b"POST /hooks/" + TOKEN.encode() + b" HTTP/1.1\r\nHost: t\r\n")
        with contextlib.suppress(OSError):
            for n in range(100):  # 10 s of trickling at most
                if answer.done():
                    break
                writer.write(b"X-Slow-%d: 1\r\n" % n)
                await writer.drain()
                await asyncio.sleep(0.1)
        received = await answer
        writer.close()
    assert received.startswith(b"HTTP/1.1 408 "), received[:200]
    assert b"request headers not received within 0.5s" in received


async def test_trickled_body_of_a_valid_client_gets_408(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    async with served_with(tmp_path, write_config, body_timeout=1) as served:
        reader, writer = await connect(served)
        answer = asyncio.create_task(read_answer(reader))
        writer.write(
            b"POST /hooks/" + TOKEN.encode() + b" HTTP/1.1\r\nHost: t\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
        )
        with contextlib.suppress(OSError):
            for _ in range(100):  # 10 s of trickling at most
                if answer.done():
                    break
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(0.1)
        received = await answer
        writer.close()
        assert received.startswith(b"HTTP/1.1 408 "), received[:200]
        assert b"request body not received within 1s" in received
        assert not any(key.startswith("events_") for key in await served.runtime.queue.counts())


async def test_connections_beyond_max_connections_get_503_until_one_closes(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    async with served_with(tmp_path, write_config, max_connections=5, idle_timeout=30) as served:
        held = [await connect(served) for _ in range(5)]
        reader, writer = await connect(served)
        writer.write(
            b"POST /hooks/" + TOKEN.encode() + b" HTTP/1.1\r\nHost: t\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(EVENT) + EVENT
        )
        answer = await read_answer(reader)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 503 "), answer[:200]
        assert b"retry-after: 1\r\n" in answer.lower()
        for _, held_writer in held:
            held_writer.close()
            await held_writer.wait_closed()
        status = 503
        async with aiohttp.ClientSession() as client:
            for _ in range(50):  # until the server has seen the closes (5 s at most)
                url = f"{served.url}/hooks/{TOKEN}"
                with contextlib.suppress(aiohttp.ClientError):
                    async with client.post(url, json=json.loads(EVENT)) as reply:
                        status = reply.status
                if status != 503:
                    break
                await asyncio.sleep(0.1)
        assert status == 202


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("header_timeout", "0", "header_timeout: Input should be greater than 0"),
        ("idle_timeout", "soon", "idle_timeout: Value error, expected a duration"),
        ("max_connections", "0", "max_connections: Input should be greater than or equal to 1"),
        ("max_headers_bytes", "10", "max_headers_bytes: Input should be greater than or equal"),
    ],
)
def test_bad_limits_are_config_errors_with_their_position(
    write_config: Callable[..., Path], setting: str, value: str, message: str
) -> None:
    path = write_config(f"server:\n  port: 8000\n  {setting}: {value}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    found = [str(p) for p in caught.value.problems]
    assert any(p.startswith(f"{path}:3:") and f"server.{message}" in p for p in found), found
