"""The serving path end to end: receiver -> queue -> worker -> sekoia enricher -> webhook sink.

The receiver is called in-process (ASGI); the Sekoia.io API and the notification target are
loopback servers.
"""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from notirouter.config.loader import load_config_text
from notirouter.ingest.receiver import create_app
from notirouter.runtime import Runtime
from tests.loopback import LoopbackServer
from tests.sekoia_fixtures import (
    ALERT_SHORT_ID,
    ALERT_UUID,
    API_KEY,
    Failure,
    FakeSekoia,
    alert_event,
    metadata,
)

TOKEN = "test-token-0123456789abcdef"
CONFIG = f"""
hooks: [{{name: sekoia, token: {TOKEN}, source: sekoia}}]
queue: {{path: "QUEUE", synchronous: normal}}
delivery: {{backoff_initial: 10ms, backoff_max: 50ms}}
enrichers:
  sekoia:
    type: sekoia
    api_key: {API_KEY}
    base_url: "API"
    region: fra1
    attempts: 2
    backoff_initial: 1ms
    backoff_max: 5ms
    cache_window: 5s  # however slow the test machine, the storm's events share one request
sinks:
  forward: {{type: webhook, url: "TARGET/notify"}}
routes:
  - {{name: alerts, match: {{type: alert}}, enrich: [sekoia], sinks: [forward]}}
"""


@pytest.fixture
async def served(
    tmp_path: Path, loopback: LoopbackServer
) -> AsyncIterator[tuple[httpx.AsyncClient, FakeSekoia]]:
    server = LoopbackServer()
    await server.start()
    sekoia = FakeSekoia(server)
    text = (
        textwrap.dedent(CONFIG)
        .replace("QUEUE", str(tmp_path / "q.db"))
        .replace("API", sekoia.url)
        .replace("TARGET", loopback.url)
    )
    runtime = Runtime(load_config_text(text, "test.yaml"))
    await runtime.start()
    transport = httpx.ASGITransport(app=create_app(runtime))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://notirouter") as client:
            yield client, sekoia
    finally:
        await runtime.stop()
        await server.stop()


async def post(client: httpx.AsyncClient, event: dict[str, Any]) -> None:
    response = await client.post(f"/hooks/{TOKEN}", json=event)
    assert response.status_code == 202, response.text


async def test_an_alert_storm_costs_one_api_call(
    served: tuple[httpx.AsyncClient, FakeSekoia], loopback: LoopbackServer
) -> None:
    client, sekoia = served
    sekoia.delay = 0.05
    events = []
    for n in range(50):
        event = alert_event("updated", updated={"similar": n + 1})
        event["metadata"] = metadata(uuid=f"00000000-0000-4000-8000-{n:012d}")
        events.append(event)
    await asyncio.gather(*(post(client, event) for event in events))
    requests = await loopback.wait_for(50)
    assert len(sekoia.paths) == 1
    bodies = [r.json() for r in requests]
    assert all(b["title"] == "Alert updated: Suspicious PowerShell download" for b in bodies)
    assert {b["thread_key"] for b in bodies} == {ALERT_UUID}


async def test_an_api_outage_still_delivers(
    served: tuple[httpx.AsyncClient, FakeSekoia], loopback: LoopbackServer
) -> None:
    client, sekoia = served
    sekoia.fail(Failure(503))
    await post(client, alert_event(status_name="Pending", urgency_current_value=40))
    body = (await loopback.wait_for(1))[0].json()
    assert body["title"] == f"New alert: {ALERT_SHORT_ID}"
    assert body["link"] == f"https://app.sekoia.io/operations/alerts/{ALERT_SHORT_ID}"
    assert (
        "Details unavailable: Sekoia.io API unavailable after 2 attempts: HTTP 503" in body["text"]
    )
    assert {"name": "Status", "value": "Pending"} in body["facts"]
    assert len(sekoia.paths) == 2
