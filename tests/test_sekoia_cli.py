"""``notirouter route --enrich`` and ``notirouter send`` with the real ``sekoia`` enricher.

The Sekoia.io API and the notification target are two loopback servers; the command line runs
in a worker thread (it starts its own event loop), exactly as a user would run it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from notirouter.cli import main
from tests.loopback import LoopbackServer
from tests.sekoia_fixtures import (
    ALERT_SHORT_ID,
    ALERT_UUID,
    API_KEY,
    Failure,
    FakeSekoia,
    alert_event,
    walk_strings,
)

ALERT_URL = f"https://app.sekoia.io/operations/alerts/{ALERT_SHORT_ID}"
CONFIG = """
hooks: [{{name: sekoia, token: test-token-0123456789abcdef, source: sekoia}}]
queue: {{path: "{queue}"}}
enrichers:
  sekoia:
    type: sekoia
    api_key: {key}
    base_url: {api}
    region: fra1
    attempts: 3
    backoff_initial: 1ms
    backoff_max: 5ms
sinks:
  forward: {{type: webhook, url: "{target}/notify"}}
routes:
  - name: alerts
    match: {{type: alert}}
    enrich: [sekoia]
    sinks: [forward]
"""


@pytest.fixture
async def sekoia() -> AsyncIterator[FakeSekoia]:
    server = LoopbackServer()
    await server.start()
    yield FakeSekoia(server)
    await server.stop()


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The command line installs its own log handler on the root logger: put ours back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def run(
    tmp_path: Path, sekoia: FakeSekoia, loopback: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Any]:
    """Run ``notirouter <command> -c CONFIG EVENT.json [args]`` in a thread; return its code."""
    for key in list(os.environ):
        if key.startswith("NOTIROUTER_"):
            monkeypatch.delenv(key)  # nothing from the developer's shell leaks in
    config = tmp_path / "notirouter.yaml"
    config.write_text(
        CONFIG.format(queue=tmp_path / "q.db", key=API_KEY, api=sekoia.url, target=loopback.url),
        encoding="utf-8",
    )

    async def invoke(command: str, event: dict[str, Any], *args: str) -> int:
        path = tmp_path / "event.json"
        path.write_text(json.dumps(event), encoding="utf-8")
        return await asyncio.to_thread(main, [command, "-c", str(config), str(path), *args])

    return invoke


async def test_route_enrich_shows_the_real_status_and_urgency_label(
    run: Callable[..., Any],
    sekoia: FakeSekoia,
    loopback: LoopbackServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert await run("route", alert_event(), "--enrich", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["enrichment_errors"] == {}
    payload = report["deliveries"][0]["payload"]
    assert payload["text"].startswith("Urgency 60 (Major), status Pending.")
    assert payload["link"] == ALERT_URL
    assert sekoia.paths == [f"/v1/sic/alerts/{ALERT_UUID}"]
    assert loopback.requests == []  # a dry run sends nothing


async def test_route_without_enrich_calls_no_api(
    run: Callable[..., Any], sekoia: FakeSekoia, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run("route", alert_event()) == 0
    assert "enrichment: not called" in capsys.readouterr().out
    assert sekoia.paths == []


async def test_send_delivers_the_enriched_message(
    run: Callable[..., Any],
    sekoia: FakeSekoia,
    loopback: LoopbackServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert await run("send", alert_event()) == 0
    assert "forward (route alerts): delivered" in capsys.readouterr().out
    body = loopback.requests[0].json()
    assert body["title"] == "New alert: Suspicious PowerShell download"
    assert "Pending" in body["text"]
    assert "Major" in body["text"]
    assert {"name": "Status", "value": "Pending"} in body["facts"]
    assert {"name": "Urgency", "value": "60 (Major)"} in body["facts"]
    assert body["severity"] == "high"
    assert body["thread_key"] == ALERT_UUID
    assert body["enrichment"]["alert"]["rule"]["name"] == "PowerShell web download"
    assert API_KEY not in json.dumps(body)


async def test_api_outage_still_delivers_a_degraded_message(
    run: Callable[..., Any],
    sekoia: FakeSekoia,
    loopback: LoopbackServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sekoia.fail(Failure(500))
    assert await run("send", alert_event(status_name="Ongoing", urgency_current_value=80)) == 0
    output = capsys.readouterr()
    assert (
        "enrichment: sekoia failed: Sekoia.io API unavailable after 3 attempts: HTTP 500"
        in output.out
    )
    assert "forward (route alerts): delivered" in output.out
    assert len(sekoia.paths) == 3  # bounded retries, then the message goes out anyway
    body = loopback.requests[0].json()
    assert body["link"] == ALERT_URL
    assert (
        "Details unavailable: Sekoia.io API unavailable after 3 attempts: HTTP 500" in body["text"]
    )
    assert body["severity"] == "critical"  # from the urgency the webhook carried
    assert {"name": "Status", "value": "Ongoing"} in body["facts"]
    assert API_KEY not in output.out + output.err


async def test_a_crafted_uuid_never_reaches_the_api(
    run: Callable[..., Any],
    sekoia: FakeSekoia,
    loopback: LoopbackServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    crafted = alert_event(uuid="../../v1/apikeys", short_id="../../v1/apikeys")
    assert await run("send", crafted) == 0
    assert sekoia.paths == []
    body = loopback.requests[0].json()
    assert "Details unavailable: the event carries no valid alert uuid or short id" in body["text"]
    assert body["link"] is None
    assert body["thread_key"] is None
    assert all("apikeys" not in s for s in walk_strings(body["title"]))

    assert await run("send", alert_event(uuid="../../v1/apikeys")) == 0
    assert sekoia.paths == [f"/v1/sic/alerts/{ALERT_SHORT_ID}"]  # the short id, same endpoint
