"""Operational events (``type: notirouter``): a failing sink, its recovery and dead letters
become events in the queue, routed by the YAML routes to another sink, throttled per kind and
sink; ``check`` warns about a route that sends a sink's own trouble to that sink.

Real ``serve`` on every queue backend, loopback webhook sinks.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from notirouter.cli import main
from tests.backends import Backend
from tests.conftest import TOKEN
from tests.loopback import LoopbackServer, Reply
from tests.sekoia_fixtures import API_KEY, Failure, FakeSekoia, alert_event
from tests.serving import Served, serve


def alert(n: int) -> dict[str, object]:
    return {"type": "alert", "action": "created", "metadata": {"uuid": f"m{n}"}, "attributes": {}}


def config(backend: Backend, alerts_url: str, ops_url: str, operations: str = "") -> str:
    return f"""
hooks:
  - {{name: sekoia, token: {TOKEN}}}
queue: {backend.yaml()}
delivery: {{backoff_initial: 20ms, backoff_max: 50ms, lease: 30s}}
operations: {{failing_after: 5, throttle: 1h {operations}}}
sinks:
  a: {{type: webhook, url: "{alerts_url}"}}
  ops: {{type: webhook, url: "{ops_url}"}}
routes:
  - {{name: operations, match: {{type: notirouter}}, sinks: [ops]}}
  - {{name: alerts, match: {{type: alert}}, sinks: [a]}}
"""


@pytest.fixture
async def ops_sink() -> AsyncIterator[LoopbackServer]:
    server = LoopbackServer()
    await server.start()
    yield server
    await server.stop()


async def post(served: Served, body: dict[str, object]) -> None:
    async with (
        aiohttp.ClientSession() as client,
        client.post(f"{served.url}/hooks/{TOKEN}", json=body) as response,
    ):
        assert response.status == 202


def events(server: LoopbackServer) -> list[dict[str, Any]]:
    """The operational events a sink received, as the webhook sink sent them."""
    found: list[dict[str, Any]] = [r.json() for r in server.requests]
    assert all(message["event"]["type"] == "notirouter" for message in found)
    return found


async def test_five_failures_in_a_row_raise_one_sink_failing_and_one_recovered(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    ops_sink: LoopbackServer,
) -> None:
    loopback.reply(*[Reply(500, "down")] * 5, Reply(200, "ok"))
    path = write_config(config(queue_backend, loopback.url, ops_sink.url))
    async with serve(path) as served:
        await post(served, alert(1))
        await loopback.wait_for(6)
        await ops_sink.wait_for(2)
        await asyncio.sleep(0.3)  # nothing more follows
    failing, recovered = events(ops_sink)
    assert failing["event"]["action"] == "sink-failing"
    assert failing["event"]["sink"] == "a"
    assert failing["event"]["count"] == 5
    assert "HTTP 500" in failing["event"]["detail"]
    assert failing["title"] == "Sink a is failing"
    assert failing["severity"] == "high"
    assert recovered["event"]["action"] == "sink-recovered"
    assert recovered["event"]["sink"] == "a"
    assert recovered["title"] == "Sink a delivers again"
    assert failing["route"] == recovered["route"] == "operations"


async def test_the_throttle_holds_one_event_per_kind_and_sink(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    ops_sink: LoopbackServer,
) -> None:
    # Ten failures (five, a success, five more, a success) within one throttle period: one
    # sink-failing and one sink-recovered, not two of each.
    down = [Reply(500, "down")] * 5
    loopback.reply(*down, Reply(200, "ok"), *down, Reply(200, "ok"))
    path = write_config(config(queue_backend, loopback.url, ops_sink.url))
    async with serve(path) as served:
        await post(served, alert(1))
        await loopback.wait_for(6)
        await ops_sink.wait_for(2)
        await post(served, alert(2))
        await loopback.wait_for(12)
        await asyncio.sleep(0.5)
    assert [m["event"]["action"] for m in events(ops_sink)] == ["sink-failing", "sink-recovered"]


async def test_dead_letters_raise_one_dead_letter_event_per_throttle_period(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    ops_sink: LoopbackServer,
) -> None:
    loopback.reply(Reply(400, "no such channel"))  # refused for good: a dead letter each
    path = write_config(config(queue_backend, loopback.url, ops_sink.url))
    async with serve(path) as served:
        await post(served, alert(1))
        await ops_sink.wait_for(1)
        for n in range(2, 5):
            await post(served, alert(n))
        await loopback.wait_for(4)
        await asyncio.sleep(0.5)
    (dead,) = events(ops_sink)
    assert dead["event"]["action"] == "dead-letter"
    assert dead["event"]["sink"] == "a"
    assert "no such channel" in dead["event"]["detail"]
    assert dead["title"] == "A notification to a became a dead letter"
    facts = {fact["name"]: fact["value"] for fact in dead["facts"]}
    assert facts["sink"] == "a"
    assert facts["event id"] == dead["event"]["event_id"]


async def test_operational_events_can_be_switched_off(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    ops_sink: LoopbackServer,
) -> None:
    loopback.reply(Reply(400, "refused"))
    path = write_config(config(queue_backend, loopback.url, ops_sink.url, ", enabled: false"))
    async with serve(path) as served:
        await post(served, alert(1))
        await loopback.wait_for(1)
        await asyncio.sleep(0.5)
    assert ops_sink.requests == []


WARNING = re.compile(
    r".*: warning: route (\S+): (?:sink-failing and )?dead-letter events about sink (\S+) "
    r"go to \2 itself, which is the sink in trouble: .*"
)


def check_config(routes: str) -> str:
    return f"""
hooks:
  - {{name: sekoia, token: {TOKEN}}}
sinks:
  teams: {{type: webhook, url: "http://127.0.0.1:9/teams"}}
  mail: {{type: webhook, url: "http://127.0.0.1:9/mail"}}
routes:
{routes}
"""


@pytest.mark.parametrize(
    ("routes", "warned"),
    [
        ("  - {name: ops, match: {type: notirouter}, sinks: [teams]}", [("ops", "teams")]),
        (
            # continue: both routes see the events; each warns for its own sinks.
            "  - {name: ops, match: {type: [notirouter, alert]}, continue: true, sinks: [mail]}\n"
            "  - {name: all, match: {type: notirouter}, sinks: [teams, mail]}",
            [("ops", "mail"), ("all", "teams"), ("all", "mail")],
        ),
        (
            "  - {name: ops, match: {type: notirouter, action: dead-letter}, sinks: [mail]}",
            [("ops", "mail")],
        ),
    ],
)
def test_check_warns_about_operational_events_sent_to_the_failing_sink_itself(
    routes: str,
    warned: list[tuple[str, str]],
    write_config: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write_config(check_config(routes))
    assert main(["check", "-c", str(path)]) == 0  # a warning, not an error
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if ": warning: " in line]
    found = [WARNING.fullmatch(line) for line in warnings]
    assert all(found), out
    assert sorted(m.groups() for m in found if m) == sorted(warned)
    assert all(line.startswith(f"{path}: warning: route ") for line in warnings)


@pytest.mark.parametrize(
    "routes",
    [
        "  - {name: all, sinks: [teams, mail]}",  # a catch-all route does not get them
        # The first match stops: teams' trouble goes to mail, everybody else's to teams.
        "  - {name: ops-teams, match: {type: notirouter}, when: 'sink == \"teams\"', "
        "sinks: [mail]}\n"
        "  - {name: ops, match: {type: notirouter}, sinks: [teams]}",
        "  - {name: ops, match: {type: notirouter}, when: 'sink != \"teams\"', sinks: [teams]}\n"
        "  - {name: ops-teams, match: {type: notirouter}, when: 'sink == \"teams\"', "
        "sinks: [mail]}",
        "  - {name: recovered, match: {type: notirouter, action: sink-recovered}, sinks: [teams]}",
    ],
)
def test_check_is_quiet_when_each_sinks_trouble_goes_elsewhere(
    routes: str, write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(check_config(routes))
    assert main(["check", "-c", str(path)]) == 0
    assert "warning" not in capsys.readouterr().out


async def test_the_sekoia_circuit_raises_enrichment_down_then_recovered(
    tmp_path: Path, write_config: Callable[..., Path], ops_sink: LoopbackServer
) -> None:
    api = LoopbackServer()
    await api.start()
    sekoia = FakeSekoia(api)
    sekoia.fail(Failure(503, times=2))  # two requests in a row fail: the circuit opens
    forward = LoopbackServer()
    await forward.start()
    path = write_config(f"""
hooks:
  - {{name: sekoia, token: {TOKEN}}}
queue: {{path: "{tmp_path / "q.db"}"}}
delivery: {{backoff_initial: 20ms, backoff_max: 50ms}}
enrichers:
  sekoia:
    type: sekoia
    api_key: {API_KEY}
    base_url: "{sekoia.url}"
    region: fra1
    attempts: 2
    backoff_initial: 1ms
    backoff_max: 5ms
    circuit_failures: 2
    circuit_cooldown: 200ms
sinks:
  forward: {{type: webhook, url: "{forward.url}"}}
  ops: {{type: webhook, url: "{ops_sink.url}"}}
routes:
  - {{name: operations, match: {{type: notirouter}}, sinks: [ops]}}
  - {{name: alerts, match: {{type: alert}}, enrich: [sekoia], sinks: [forward]}}
""")
    try:
        async with serve(path) as served:
            await post(served, alert_event())
            await ops_sink.wait_for(1)
            await forward.wait_for(1)  # sent without details meanwhile
            await asyncio.sleep(0.3)  # the cool-down ends; the next event probes, and it answers
            await post(served, alert_event("updated"))
            await ops_sink.wait_for(2)
            await forward.wait_for(2)
    finally:
        await api.stop()
        await forward.stop()
    down, recovered = events(ops_sink)
    assert (down["event"]["action"], down["event"]["enricher"]) == ("enrichment-down", "sekoia")
    assert "HTTP 503" in down["event"]["detail"]
    assert down["title"] == "Enricher sekoia is down"
    assert (recovered["event"]["action"], recovered["event"]["enricher"]) == (
        "enrichment-recovered",
        "sekoia",
    )
    assert API_KEY not in str(ops_sink.requests[0].body + ops_sink.requests[1].body)


async def test_a_long_retry_after_pause_is_a_failing_sink_at_once(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    ops_sink: LoopbackServer,
) -> None:
    loopback.reply(Reply(429, "slow down", {"Retry-After": "120"}))
    path = write_config(config(queue_backend, loopback.url, ops_sink.url))
    async with serve(path) as served:
        await post(served, alert(1))
        (failing,) = await ops_sink.wait_for(1)
    event = failing.json()["event"]
    assert (event["action"], event["sink"]) == ("sink-failing", "a")
    assert event["detail"].startswith("paused 120s")


async def test_serve_logs_the_route_to_itself_warning(
    tmp_path: Path, write_config: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    routes = "  - {name: ops, match: {type: notirouter}, sinks: [teams]}"
    text = check_config(routes).replace(
        "sinks:\n", f'queue: {{path: "{tmp_path / "q.db"}"}}\nsinks:\n'
    )
    async with serve(write_config(text)):
        pass
    assert any(
        r.levelname == "WARNING" and "about sink teams go to teams itself" in r.getMessage()
        for r in caplog.records
    ), caplog.text
