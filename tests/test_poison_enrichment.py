"""Poison from the Sekoia.io API: enrichment results obey the door's rules, echoed keys go.

receiver (in-process ASGI) -> queue -> worker -> sekoia enricher (loopback API) -> sinks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import textwrap
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from pydantic import SecretStr

from notirouter import Enricher, EnricherOptions, EnrichmentError, Event, hookimpl
from notirouter.api.manager import make_plugin_manager
from notirouter.config.loader import load_config, load_config_text
from notirouter.ingest.payload import MAX_NESTING
from notirouter.ingest.receiver import create_app
from notirouter.runtime import Runtime
from tests.loopback import LoopbackServer
from tests.sekoia_fixtures import ALERT_SHORT_ID, ALERT_UUID, API_KEY, FakeSekoia, alert_event

TOKEN = "test-token-0123456789abcdef"
CONFIG = f"""
hooks: [{{name: sekoia, token: {TOKEN}, source: sekoia}}]
queue: {{path: "QUEUE"}}
enrichers:
  sekoia: {{type: sekoia, api_key: {API_KEY}, base_url: "API", region: fra1, attempts: 1}}
sinks:
  forward: {{type: webhook, url: "TARGET/notify"}}
  console: {{type: log, include_event: true}}
routes:
  - {{name: alerts, match: {{type: alert}}, enrich: [sekoia], sinks: [forward, console]}}
"""


@dataclass
class Setup:
    client: httpx.AsyncClient
    sekoia: FakeSekoia
    runtime: Runtime


@pytest.fixture
async def setup(tmp_path: Path, loopback: LoopbackServer) -> AsyncIterator[Setup]:
    api = LoopbackServer()
    await api.start()
    sekoia = FakeSekoia(api)
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
            yield Setup(client, sekoia, runtime)
    finally:
        await runtime.stop()
        await api.stop()


async def deliver(setup: Setup, loopback: LoopbackServer) -> dict[str, Any]:
    response = await setup.client.post(f"/hooks/{TOKEN}", json=alert_event())
    assert response.status_code == 202, response.text
    [request] = await loopback.wait_for(1)
    body: dict[str, Any] = request.json()
    return body


async def both_delivered(setup: Setup) -> None:
    for _ in range(500):
        with sqlite3.connect(setup.runtime.queue.path) as connection:
            [(done,)] = connection.execute("SELECT COUNT(*) FROM deliveries WHERE state = 'done'")
        if done == 2:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the two deliveries were not made")


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


async def test_a_lone_surrogate_from_the_api_is_delivered_as_a_replacement_character(
    setup: Setup, loopback: LoopbackServer
) -> None:
    for key in (ALERT_UUID, ALERT_SHORT_ID):
        setup.sekoia.alerts[key]["title"] = "Beacon \ud800 to C2"
    body = await deliver(setup, loopback)
    assert body["title"] == "New alert: Beacon \ufffd to C2"


async def test_an_api_answer_nested_too_deep_is_refused_and_the_alert_still_goes_out(
    setup: Setup, loopback: LoopbackServer
) -> None:
    # 230 levels: stored, the message could not be read back, and was dead at delivery.
    for key in (ALERT_UUID, ALERT_SHORT_ID):
        setup.sekoia.alerts[key]["stix"] = nested(230)
    body = await deliver(setup, loopback)
    assert body["title"] == f"New alert: {ALERT_SHORT_ID}"
    assert (
        f"Details unavailable: the enrichment result is nested deeper than {MAX_NESTING} levels"
        in body["text"]
    )


def echo_key(prefix: str) -> Any:
    async def handler(request: web.Request, body: bytes) -> web.Response:
        message = f"{prefix}invalid community for token {API_KEY}, see the docs"
        return web.json_response({"message": message}, status=400)

    return handler


@pytest.mark.parametrize("prefix", ["", "x" * 160], ids=["whole", "cut-by-truncation"])
async def test_a_key_echoed_by_the_api_reaches_no_notification_queue_or_log(
    setup: Setup,
    loopback: LoopbackServer,
    prefix: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    setup.sekoia.server.handler = echo_key(prefix)
    body = await deliver(setup, loopback)
    assert "Sekoia.io API refused the alert request (HTTP 400): " in body["text"]
    await both_delivered(setup)
    printed = capsys.readouterr().out
    assert '"sink": "console"' in printed
    with sqlite3.connect(setup.runtime.queue.path) as connection:
        stored = " ".join(row[0] for row in connection.execute("SELECT message FROM deliveries"))
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for where, text in [
        ("notification", json.dumps(body)),
        ("log sink", printed),
        ("queue", stored),
        ("log", logged),
    ]:
        # Not the key, nor the first characters of it a cut would leave.
        assert API_KEY[:8] not in text, where


class EchoingOptions(EnricherOptions):
    token: SecretStr


class EchoingEnricher(Enricher[EchoingOptions]):
    """A third-party enricher whose service quotes the credential in its error."""

    type_name = "echoing"
    Options = EchoingOptions

    async def enrich(self, event: Event) -> Mapping[str, Any]:
        token = self.options.token.get_secret_value()
        raise EnrichmentError(f"401 from the CMDB: token {token} is not valid\ud800")


class EchoingPlugin:
    @hookimpl
    def register_enrichers(self, register: Callable[[type[Enricher[Any]]], None]) -> None:
        register(EchoingEnricher)


async def test_any_enrichers_secret_is_redacted_from_its_failure_reason(
    write_config: Callable[..., Path],
) -> None:
    path = write_config(
        """
enrichers: {cmdb: {type: echoing, token: cmdb-token-0123456789}}
sinks: {a: {type: log}}
routes: [{name: r, enrich: [cmdb], sinks: [a]}]
"""
    )

    def factory(blocked: Any) -> Any:
        return make_plugin_manager(blocked=blocked, extra_plugins=[("echo", EchoingPlugin())])

    pipeline = Runtime(load_config(path, environ={}, manager_factory=factory)).pipeline
    routed = await pipeline.route(pipeline.parse("sekoia", alert_event()))
    assert routed.enrichment_errors == {"cmdb": "401 from the CMDB: token *** is not valid\ufffd"}
    [(_, message)] = routed.messages
    assert "cmdb-token" not in message.model_dump_json()
