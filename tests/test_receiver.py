"""The HTTP contract of POST /hooks/{token}, against the real server on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import TOKEN
from tests.loopback import LoopbackServer
from tests.serving import Served, serve

ALERT = {
    "type": "alert",
    "action": "created",
    "attributes": {"uuid": "5696845f-9ecf-4431-9f0f-48ee0ee2eff1", "short_id": "ALEY4fqz8moo"},
    "metadata": {
        "version": 2,
        "uuid": "a8fb31cb-7310-4f59-afc2-d52033b5cf78",
        "created_at": "2022-01-14T15:06:57.398005+00:00",
        "community_uuid": "d6cea089-0f36-46c4-a10a-0e4c2e20fb10",
    },
}


def config_text(db: Path, sink_url: str, max_body: int = 4096) -> str:
    return f"""
server: {{max_body_bytes: {max_body}}}
hooks:
  - {{name: sekoia, token: {TOKEN}, source: sekoia}}
queue: {{path: "{db}", busy_timeout: 0.2}}
sinks:
  forward: {{type: webhook, url: "{sink_url}"}}
routes:
  - name: all
    match: {{type: "*"}}
    sinks: [forward]
"""


@pytest.fixture
async def served(
    tmp_path: Path, write_config: Callable[..., Path], loopback: LoopbackServer
) -> AsyncIterator[Served]:
    path = write_config(config_text(tmp_path / "queue.db", f"{loopback.url}/sink"))
    async with serve(path) as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post(
    client: aiohttp.ClientSession, served: Served, body: Any, *, token: str = TOKEN, **kwargs: Any
) -> tuple[int, Any, aiohttp.ClientResponse]:
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    headers = kwargs.pop("headers", {"Content-Type": "application/json"})
    async with client.post(
        f"{served.url}/hooks/{token}", data=data, headers=headers, **kwargs
    ) as r:
        text = await r.text()
        return r.status, (json.loads(text) if text else None), r


def stored_events(served: Served) -> list[tuple[str, bytes]]:
    """Read the queue file with a separate connection: only committed rows are visible."""
    with sqlite3.connect(served.runtime.queue.path) as connection:
        return [(r[0], bytes(r[1])) for r in connection.execute("SELECT id, body FROM events")]


async def test_valid_event_is_committed_before_202(
    served: Served, client: aiohttp.ClientSession
) -> None:
    status, body, _ = await post(client, served, ALERT)
    assert status == 202
    assert body["duplicate"] is False
    assert stored_events(served) == [(body["id"], json.dumps(ALERT).encode())]


async def test_duplicate_is_recognised_and_delivered_once(
    served: Served, client: aiohttp.ClientSession, loopback: LoopbackServer
) -> None:
    _, first, _ = await post(client, served, ALERT)
    await loopback.wait_for(1)
    status, second, _ = await post(client, served, ALERT)
    assert status == 202
    assert second == {"id": first["id"], "duplicate": True}
    await asyncio.sleep(0.3)
    assert len(loopback.requests) == 1
    assert len(stored_events(served)) == 1


async def test_without_metadata_uuid_the_body_digest_dedupes(
    served: Served, client: aiohttp.ClientSession
) -> None:
    event = {**ALERT, "metadata": {"version": 2, "created_at": "2022-01-14T15:06:57+00:00"}}
    _, first, _ = await post(client, served, event)
    _, again, _ = await post(client, served, event)
    changed = {**event, "action": "updated"}
    _, other, _ = await post(client, served, changed)
    assert again == {"id": first["id"], "duplicate": True}
    assert other["duplicate"] is False and other["id"] != first["id"]


async def test_unknown_token_is_indistinguishable_from_unknown_path(
    served: Served, client: aiohttp.ClientSession
) -> None:
    status, body, response = await post(client, served, ALERT, token="wrong-token-0123456789abc")
    async with client.post(f"{served.url}/no/such/path", data=b"{}") as other:
        other_body = await other.read()
        assert (other.status, other.headers["Content-Type"]) == (
            404,
            response.headers["Content-Type"],
        )
    assert status == 404
    assert json.dumps(body, separators=(",", ":")).encode() == other_body
    assert stored_events(served) == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
async def test_non_json_content_type_is_415(
    served: Served, client: aiohttp.ClientSession, content_type: str
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    status, body, _ = await post(client, served, json.dumps(ALERT).encode(), headers=headers)
    assert status == 415
    assert body == {"error": "content type must be application/json"}


async def test_json_with_charset_and_plus_json_are_accepted(
    served: Served, client: aiohttp.ClientSession
) -> None:
    for content_type in ("application/json; charset=utf-8", "application/vnd.sekoia+json"):
        event = {**ALERT, "metadata": {**ALERT["metadata"], "uuid": content_type}}
        status, _, _ = await post(client, served, event, headers={"Content-Type": content_type})
        assert status == 202


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "malformed JSON"),
        (b"[1, 2]", "the body must be a JSON object"),
        (b"", "malformed JSON"),
    ],
)
async def test_malformed_or_non_object_json_is_400(
    served: Served, client: aiohttp.ClientSession, raw: bytes, reason: str
) -> None:
    status, body, _ = await post(client, served, raw)
    assert status == 400
    assert body["error"].startswith(reason)


async def test_missing_fields_are_422_with_locations(
    served: Served, client: aiohttp.ClientSession
) -> None:
    status, body, _ = await post(client, served, {"attributes": {}})
    assert status == 422
    assert sorted(tuple(d["loc"]) for d in body["detail"]) == [("action",), ("type",)]
    assert all(d["type"] == "missing" for d in body["detail"])


async def test_wrong_field_types_are_422_with_locations(
    served: Served, client: aiohttp.ClientSession
) -> None:
    event = {**ALERT, "type": 5, "attributes": "not an object"}
    status, body, _ = await post(client, served, event)
    assert status == 422
    assert sorted(tuple(d["loc"]) for d in body["detail"]) == [("attributes",), ("type",)]
    assert stored_events(served) == []


async def test_notirouters_own_event_type_cannot_come_from_outside(
    served: Served, client: aiohttp.ClientSession
) -> None:
    forged = {**ALERT, "type": "notirouter", "action": "sink-recovered"}
    status, body, _ = await post(client, served, forged)
    assert status == 422
    assert [tuple(d["loc"]) for d in body["detail"]] == [("type",)]
    assert "reserved" in body["detail"][0]["msg"]
    assert stored_events(served) == []


async def test_unknown_type_is_accepted_and_routed(
    served: Served, client: aiohttp.ClientSession, loopback: LoopbackServer
) -> None:
    event = {"type": "intake-silence", "action": "triggered", "attributes": {"intake": "fw"}}
    status, _body, _ = await post(client, served, event)
    assert status == 202
    [request] = await loopback.wait_for(1)
    delivered = request.json()
    assert delivered["event"]["type"] == "intake-silence"
    assert {"name": "intake", "value": "fw"} in delivered["facts"]


async def raw_request(served: Served, head: bytes, body_parts: list[bytes]) -> tuple[bytes, int]:
    """Send a request by hand; return the answer and how many body parts were written first."""
    host, port = served.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(head)
    await writer.drain()
    sent = 0
    answer = b""
    for part in body_parts:
        with contextlib.suppress(TimeoutError):
            answer = await asyncio.wait_for(reader.read(4096), timeout=0.05)
        if answer:
            break
        writer.write(part)
        await writer.drain()
        sent += 1
    if not answer:
        answer = await asyncio.wait_for(reader.read(4096), timeout=5)
    writer.close()
    return answer, sent


async def test_declared_oversized_body_is_413_before_the_body_is_sent(served: Served) -> None:
    head = (
        f"POST /hooks/{TOKEN} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000000000\r\n\r\n"
    ).encode()
    answer, sent = await raw_request(served, head, [b"x" * 1000] * 20)
    assert answer.startswith(b"HTTP/1.1 413")
    assert sent == 0


async def test_streamed_oversized_body_is_413_without_reading_it_all(served: Served) -> None:
    head = (
        f"POST /hooks/{TOKEN} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    chunk = b"400\r\n" + b"x" * 1024 + b"\r\n"  # 1 KiB per chunk, limit is 4 KiB
    answer, sent = await raw_request(served, head, [chunk] * 200)
    assert answer.startswith(b"HTTP/1.1 413")
    assert sent < 50
    assert stored_events(served) == []


async def test_queue_that_cannot_commit_answers_503(
    served: Served, client: aiohttp.ClientSession
) -> None:
    blocker = sqlite3.connect(served.runtime.queue.path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        status, _body, response = await post(client, served, ALERT)
        assert status == 503
        assert response.headers["Retry-After"] == "5"
        async with client.get(f"{served.url}/readyz") as ready:
            assert ready.status == 503
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    status, _, _ = await post(client, served, ALERT)
    assert status == 202  # not remembered as a duplicate: it was never stored


async def test_health_readiness_and_metrics(served: Served, client: aiohttp.ClientSession) -> None:
    await post(client, served, ALERT)
    await post(client, served, {"type": "alert"})
    async with client.get(f"{served.url}/healthz") as r:
        assert (r.status, await r.json()) == (200, {"status": "ok"})
    async with client.get(f"{served.url}/readyz") as r:
        assert (r.status, await r.json()) == (200, {"status": "ready"})
    async with client.get(f"{served.url}/metrics") as r:
        text = await r.text()
    assert 'notirouter_events_received_total{hook="sekoia",result="accepted"} 1.0' in text
    assert 'notirouter_events_received_total{hook="sekoia",result="422"} 1.0' in text
    assert TOKEN not in text


async def test_token_never_appears_in_logs(
    served: Served,
    client: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
    loopback: LoopbackServer,
) -> None:
    caplog.set_level(logging.DEBUG)
    await post(client, served, ALERT)
    await post(client, served, {"type": 1})
    await post(client, served, ALERT, token=TOKEN + "x")
    await loopback.wait_for(1)
    await asyncio.sleep(0.1)
    lines = [record.getMessage() for record in caplog.records]
    assert any('"POST /hooks/***" 202' in line for line in lines)
    assert not any(TOKEN in line for line in lines)


async def test_queue_gauges_drop_to_zero_when_a_backlog_drains(
    served: Served, client: aiohttp.ClientSession, loopback: LoopbackServer
) -> None:
    served.runtime.metrics.set_queue_counts({"deliveries_pending": 7, "events_pending": 3})
    await post(client, served, ALERT)
    await loopback.wait_for(1)
    await asyncio.sleep(0.2)
    async with client.get(f"{served.url}/metrics") as r:
        text = await r.text()
    assert 'notirouter_queue_jobs{kind="deliveries",state="pending"} 0.0' in text
    assert 'notirouter_queue_jobs{kind="events",state="pending"} 0.0' in text
    assert 'notirouter_queue_jobs{kind="deliveries",state="done"} 1.0' in text
