"""Reconciliation with the Sekoia.io API: the alert changes no webhook delivered are found in
the alert list, enqueued once and routed like webhooks, on every queue backend.

Real ``serve`` processes (tests/serve_process.py), the Sekoia.io API and the notification
targets on loopback.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from notirouter.config.models import QueueConfig
from tests.backends import Backend
from tests.conftest import TOKEN
from tests.loopback import LoopbackServer
from tests.sekoia_fixtures import API_KEY, Failure, FakeSekoia, alert_event, new_alert
from tests.serve_process import free_port, start_serve, wait_exit
from tests.test_reload import metric, wait_for_log

PAGE = 10


def config(
    backend: Backend,
    api: str,
    target: str,
    *,
    lookback: str = "1h",
    enricher: str = "",
    reconcile: str = "",
) -> str:
    return f"""
hooks: [{{name: sekoia, token: {TOKEN}, source: sekoia}}]
queue: {backend.yaml()}
delivery: {{backoff_initial: 10ms, backoff_max: 50ms, lease: 30s}}
operations: {{throttle: 1h}}
enrichers:
  sekoia:
    type: sekoia
    api_key: {API_KEY}
    base_url: "{api}"
    region: fra1
    attempts: 3
    backoff_initial: 1ms
    backoff_max: 5ms
    cache_ttl: 0s
    {enricher}
    reconcile: {{interval: 300ms, lookback: {lookback}, delay: 0s, page_size: {PAGE}{reconcile}}}
sinks:
  forward: {{type: webhook, url: "{target}/notify"}}
  ops: {{type: webhook, url: "{target}/ops"}}
routes:
  - {{name: alerts, match: {{type: alert}}, enrich: [sekoia], sinks: [forward]}}
  - {{name: operations, match: {{type: notirouter}}, sinks: [ops]}}
"""


@pytest.fixture
async def sekoia() -> AsyncIterator[FakeSekoia]:
    server = LoopbackServer()
    await server.start()
    yield FakeSekoia(server)
    await server.stop()


class Notirouter:
    """``serve`` child processes on one config, each with its own port and log."""

    def __init__(self, config: Path, tmp_path: Path) -> None:
        self.config = config
        self.tmp_path = tmp_path
        self.processes: list[tuple[subprocess.Popen[bytes], int, Path]] = []

    async def start(self) -> tuple[subprocess.Popen[bytes], int, Path]:
        port = free_port()
        log = self.tmp_path / f"serve-{len(self.processes)}.log"
        process = await start_serve(self.config, port, log)
        self.processes.append((process, port, log))
        return process, port, log

    async def stop(self, process: subprocess.Popen[bytes]) -> None:
        process.send_signal(signal.SIGTERM)
        assert await wait_exit(process, 20) == 0

    async def stop_all(self) -> None:
        for process, _, _ in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, _, _ in self.processes:
            await wait_exit(process, 20)


@pytest.fixture
async def notirouter(
    queue_backend: Backend,
    sekoia: FakeSekoia,
    loopback: LoopbackServer,
    write_config: Callable[..., Path],
    tmp_path: Path,
) -> AsyncIterator[Notirouter]:
    runner = Notirouter(write_config(config(queue_backend, sekoia.url, loopback.url)), tmp_path)
    try:
        yield runner
    finally:
        await runner.stop_all()


def notified(target: LoopbackServer, path: str = "/notify") -> list[dict[str, Any]]:
    return [r.json() for r in target.requests if r.path == path]


async def wait_notified(
    target: LoopbackServer, count: int, path: str = "/notify", timeout: float = 30.0
) -> list[dict[str, Any]]:
    for _ in range(int(timeout / 0.05)):
        found = notified(target, path)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"{len(notified(target, path))} of {count} notifications to {path}")


async def passes(sekoia: FakeSekoia, count: int, timeout: float = 30.0) -> None:
    """Wait until the alert list was read from its start ``count`` more times."""
    target = len(sekoia.list_queries) + count
    for _ in range(int(timeout / 0.05)):
        if sum(1 for q in sekoia.list_queries if q.get("offset") == "0") >= target:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the alert list was not read again")


def alert_uuid(body: dict[str, Any]) -> str:
    return str(body["event"]["attributes"]["uuid"])


async def test_changes_made_while_stopped_are_delivered_once_after_restart(
    notirouter: Notirouter, sekoia: FakeSekoia, loopback: LoopbackServer
) -> None:
    before = int(time.time()) - 600
    old = [new_alert(n, before) for n in range(5)]
    for alert in old:
        sekoia.put_alert(alert)
    process, _, log = await notirouter.start()
    await wait_for_log(log, "reconciliation of all starts from now")
    await notirouter.stop(process)
    assert notified(loopback) == []  # what happened before it watched is not recovered

    # While stopped: 20 new alerts and 5 updated ones, 25 changes, three pages of 10.
    now = int(time.time())
    new = [new_alert(n, now) for n in range(100, 120)]
    for alert in new:
        sekoia.put_alert(alert)
    for alert in old:
        sekoia.update_alert(alert["uuid"], now, status={"uuid": "x", "name": "Acknowledged"})
    queries_before = len(sekoia.list_queries)

    _, port, log = await notirouter.start()
    bodies = await wait_notified(loopback, 25)
    await passes(sekoia, 2)  # the next passes find them seen: nothing more
    bodies = notified(loopback)
    assert sorted(Counter(map(alert_uuid, bodies)).values()) == [1] * 25
    assert {alert_uuid(b) for b in bodies} == {a["uuid"] for a in old + new}
    actions = Counter(b["event"]["action"] for b in bodies)
    assert actions == {"created": 20, "updated": 5}
    assert all(b["event"]["metadata"]["reconciled"] is True for b in bodies)
    titles = {b["event"]["attributes"]["uuid"]: b["title"] for b in bodies}
    assert titles[new[0]["uuid"]] == "New alert: Alert number 100"

    catch_up = sekoia.list_queries[queries_before : queries_before + 3]
    assert [q["offset"] for q in catch_up] == ["0", "10", "20"]
    assert all(q["sort"] == "updated_at" and q["limit"] == str(PAGE) for q in catch_up)
    assert catch_up[0]["date[updated_at]"].endswith(",now")

    ops = await wait_notified(loopback, 1, "/ops")
    recovered = [o for o in ops if o["event"]["action"] == "reconcile-recovered"]
    assert len(recovered) == 1
    assert recovered[0]["event"]["count"] == 25
    assert set(recovered[0]["event"]["ids"]) == {a["short_id"] for a in old + new}
    assert recovered[0]["title"] == "25 alert changes recovered from the Sekoia.io API"
    text = await wait_for_log(log, "reconciliation caught up on 25 changes")
    assert "no webhook delivered" in text
    async with aiohttp.ClientSession() as client:
        recovered_metric = 'notirouter_reconcile_recovered_total{enricher="sekoia"}'
        assert await metric(client, f"http://127.0.0.1:{port}", recovered_metric) == 25.0


async def post(port: int, event: dict[str, Any]) -> str:
    async with (
        aiohttp.ClientSession() as client,
        client.post(f"http://127.0.0.1:{port}/hooks/{TOKEN}", json=event) as response,
    ):
        assert response.status == 202
        return str((await response.json())["id"])


def trace(config: Path, event_id: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "notirouter", "trace", "-c", str(config), event_id],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout


async def routed(port: int, count: int, timeout: float = 30.0) -> None:
    async with aiohttp.ClientSession() as client:
        for _ in range(int(timeout / 0.05)):
            if (
                await metric(client, f"http://127.0.0.1:{port}", "notirouter_events_routed_total")
                >= count
            ):
                return
            await asyncio.sleep(0.05)
    raise AssertionError(f"{count} events not routed")


async def test_a_change_seen_by_webhook_then_by_reconciliation_is_notified_once(
    notirouter: Notirouter, sekoia: FakeSekoia, loopback: LoopbackServer
) -> None:
    _, port, log = await notirouter.start()
    await wait_for_log(log, "reconciliation of all starts from now")
    alert = new_alert(1, int(time.time()))
    sekoia.unlisted.add(alert["uuid"])  # the API lists it only once the webhook got through
    sekoia.put_alert(alert)
    await post(port, alert_event("created", uuid=alert["uuid"], short_id=alert["short_id"]))
    first = await wait_notified(loopback, 1)
    assert first[0]["event"]["metadata"].get("reconciled") is None
    sekoia.unlisted.clear()
    await passes(sekoia, 3)
    assert len(notified(loopback)) == 1


async def test_a_change_seen_by_reconciliation_then_by_webhook_is_notified_once(
    notirouter: Notirouter, sekoia: FakeSekoia, loopback: LoopbackServer
) -> None:
    _, port, log = await notirouter.start()
    await wait_for_log(log, "reconciliation of all starts from now")
    alert = new_alert(2, int(time.time()))
    sekoia.put_alert(alert)
    first = await wait_notified(loopback, 1)
    assert first[0]["event"]["metadata"]["reconciled"] is True
    # The webhook Sekoia.io sent for the same change arrives late (say, a slow network).
    late = alert_event("created", uuid=alert["uuid"], short_id=alert["short_id"])
    event_id = await post(port, late)
    await routed(port, 3)  # the reconciled event, its recovered report, and the webhook
    await passes(sekoia, 1)
    assert len(notified(loopback)) == 1
    told = trace(notirouter.config, event_id)
    key = f"sekoia-alert:{alert['uuid']}:{alert['updated_at']}"
    assert f"change     {key}: already notified by reconciliation: no delivery" in told
    # A later change of the same alert is a new change: notified again, once.
    sekoia.update_alert(alert["uuid"], int(time.time()) + 1, similar=7)
    await post(port, alert_event("updated", uuid=alert["uuid"], short_id=alert["short_id"]))
    await wait_notified(loopback, 2)
    await passes(sekoia, 2)
    assert len(notified(loopback)) == 2


async def test_a_429_is_waited_out_as_retry_after_says(
    notirouter: Notirouter, sekoia: FakeSekoia, loopback: LoopbackServer
) -> None:
    _, _, log = await notirouter.start()
    await wait_for_log(log, "reconciliation of all starts from now")
    await passes(sekoia, 1)
    refused = len(sekoia.server.requests)  # the next request is answered 429
    sekoia.fail(Failure(429, times=1, headers={"Retry-After": "1"}))
    sekoia.put_alert(new_alert(3, int(time.time())))
    await wait_notified(loopback, 1)
    requests = sekoia.server.requests
    assert requests[refused].path == requests[refused + 1].path == "/v1/sic/alerts"
    assert requests[refused].query == requests[refused + 1].query  # the same page, again
    # Polled every 300 ms, the retry waited the second Retry-After asked for.
    assert requests[refused + 1].at - requests[refused].at >= 0.95
    assert len(notified(loopback)) == 1


@pytest.fixture
async def postgres_notirouter(
    postgres_backend: Backend,
    sekoia: FakeSekoia,
    loopback: LoopbackServer,
    write_config: Callable[..., Path],
    tmp_path: Path,
) -> AsyncIterator[Notirouter]:
    text = config(postgres_backend, sekoia.url, loopback.url)
    runner = Notirouter(write_config(text), tmp_path)
    try:
        yield runner
    finally:
        await runner.stop_all()


async def test_two_postgres_processes_reconcile_once(
    postgres_notirouter: Notirouter, sekoia: FakeSekoia, loopback: LoopbackServer
) -> None:
    first, _, first_log = await postgres_notirouter.start()
    await wait_for_log(first_log, "reconciliation of all starts from now")
    _, _, second_log = await postgres_notirouter.start()
    await wait_for_log(second_log, "another process reconciles all")
    now = int(time.time())
    batch = [new_alert(n, now) for n in range(200, 230)]
    for alert in batch:
        sekoia.put_alert(alert)
    await wait_notified(loopback, 30)
    await passes(sekoia, 3)
    assert sorted(Counter(map(alert_uuid, notified(loopback))).values()) == [1] * 30
    reports = [o["event"] for o in await wait_notified(loopback, 1, "/ops")]
    # One process holds the lease: it alone reported what it recovered.
    assert len(reports) == 1 and reports[0]["count"] == 30
    assert reports[0]["process"].endswith(f":{first.pid}")
    assert "this process reconciles all" not in second_log.read_text()

    # The holder stops (and gives the lease up): the other one takes over at once.
    await postgres_notirouter.stop(first)
    await wait_for_log(second_log, "this process reconciles all")
    more = [new_alert(n, int(time.time())) for n in range(300, 305)]
    for alert in more:
        sekoia.put_alert(alert)
    await wait_notified(loopback, 35)
    await passes(sekoia, 2)
    assert sorted(Counter(map(alert_uuid, notified(loopback))).values()) == [1] * 35


async def test_two_processes_on_one_sqlite_file_reconcile_once(
    sekoia: FakeSekoia,
    loopback: LoopbackServer,
    write_config: Callable[..., Path],
    tmp_path: Path,
) -> None:
    backend = Backend("sqlite", QueueConfig(path=str(tmp_path / "shared.db")))
    runner = Notirouter(write_config(config(backend, sekoia.url, loopback.url)), tmp_path)
    try:
        _, _, first_log = await runner.start()
        await wait_for_log(first_log, "reconciliation of all starts from now")
        _, _, second_log = await runner.start()
        await wait_for_log(second_log, "another process reconciles all")
        now = int(time.time())
        for alert in [new_alert(n, now) for n in range(400, 412)]:
            sekoia.put_alert(alert)
        await wait_notified(loopback, 12)
        await passes(sekoia, 3)
        assert sorted(Counter(map(alert_uuid, notified(loopback))).values()) == [1] * 12
        assert "this process reconciles all" not in second_log.read_text()
    finally:
        await runner.stop_all()


async def test_reload_reports_config_reloaded_and_config_rejected(
    notirouter: Notirouter, sekoia: FakeSekoia, loopback: LoopbackServer
) -> None:
    process, _, log = await notirouter.start()
    text = notirouter.config.read_text()
    notirouter.config.write_text(text.replace("lease: 30s", "lease: 31s"), encoding="utf-8")
    process.send_signal(signal.SIGHUP)
    reloaded = (await wait_notified(loopback, 1, "/ops"))[0]
    assert reloaded["event"]["action"] == "config-reloaded"
    assert reloaded["title"] == "Configuration reloaded"
    broken = text.replace("lease: 30s", "lease: -1s").replace("max: 50ms", "max: -50ms")
    notirouter.config.write_text(broken, encoding="utf-8")
    process.send_signal(signal.SIGHUP)
    await wait_for_log(log, "reload rejected")
    rejected = (await wait_notified(loopback, 2, "/ops"))[1]
    assert rejected["event"]["action"] == "config-rejected"
    assert rejected["event"]["count"] == 2
    assert "2 problems" in rejected["event"]["detail"]
    assert str(notirouter.config) in json.dumps(rejected)
    # The reconciliation of the reloaded enricher runs on, in this process still.
    sekoia.put_alert(new_alert(700, int(time.time())))
    (body,) = await wait_notified(loopback, 1)
    assert body["event"]["metadata"]["reconciled"] is True
    assert "another process reconciles" not in log.read_text()


async def test_a_catch_up_goes_back_no_further_than_lookback(
    queue_backend: Backend,
    sekoia: FakeSekoia,
    loopback: LoopbackServer,
    write_config: Callable[..., Path],
    tmp_path: Path,
) -> None:
    now = int(time.time())
    # Stopped for ten minutes, with a lookback of two.
    queue = queue_backend.make()
    await queue.open()
    ledger = queue.changes()
    assert await ledger.hold("sekoia:all", "an earlier process", 60)
    assert await ledger.commit("sekoia:all", "an earlier process", [], now - 600.0) == []
    await ledger.release("sekoia:all", "an earlier process")
    await queue.close()
    too_old, recent = new_alert(500, now - 300), new_alert(501, now - 30)
    sekoia.put_alert(too_old)
    sekoia.put_alert(recent)
    text = config(queue_backend, sekoia.url, loopback.url, lookback="2m")
    runner = Notirouter(write_config(text), tmp_path)
    try:
        _, _, log = await runner.start()
        await wait_notified(loopback, 1)
        await passes(sekoia, 2)
        assert [alert_uuid(b) for b in notified(loopback)] == [recent["uuid"]]
        assert "changes before" in await wait_for_log(log, "(lookback) are not recovered")
    finally:
        await runner.stop_all()


async def test_reconciliation_stops_calling_while_the_circuit_is_open(
    queue_backend: Backend,
    sekoia: FakeSekoia,
    loopback: LoopbackServer,
    write_config: Callable[..., Path],
    tmp_path: Path,
) -> None:
    breaker = "circuit_failures: 3\n    circuit_cooldown: 2s"
    text = config(queue_backend, sekoia.url, loopback.url, enricher=breaker)
    runner = Notirouter(write_config(text.replace("attempts: 3", "attempts: 1")), tmp_path)
    try:
        _, _, log = await runner.start()
        await wait_for_log(log, "reconciliation of all starts from now")
        await passes(sekoia, 1)
        failing = len(sekoia.server.requests)
        sekoia.fail(Failure(503, times=3))
        sekoia.put_alert(new_alert(600, int(time.time())))
        await wait_notified(loopback, 1)
        requests = sekoia.server.requests[failing:]
        # Three readings failed and opened the circuit: no request for its cool-down (the
        # readings every 300 ms failed fast), then one probe, answered: the change goes out.
        assert requests[3].at - requests[2].at >= 1.9
        assert all(r.path == "/v1/sic/alerts" for r in requests[:4])
        ops = [o["event"]["action"] for o in await wait_notified(loopback, 3, "/ops")]
        assert sorted(ops) == ["enrichment-down", "enrichment-recovered", "reconcile-recovered"]
    finally:
        await runner.stop_all()


async def test_each_configured_community_is_read_with_its_own_watermark(
    queue_backend: Backend,
    sekoia: FakeSekoia,
    loopback: LoopbackServer,
    write_config: Callable[..., Path],
    tmp_path: Path,
) -> None:
    red, blue, other = (f"{c}0000000-0000-4000-8000-000000000000" for c in "abc")
    text = config(
        queue_backend, sekoia.url, loopback.url, reconcile=f", communities: [{red}, {blue}]"
    )
    runner = Notirouter(write_config(text), tmp_path)
    try:
        _, _, log = await runner.start()
        await wait_for_log(log, f"reconciliation of {blue} starts from now")
        assert f"reconciliation of {red} starts from now" in log.read_text()
        now = int(time.time())
        alerts = [
            new_alert(800 + n, now, community) for n, community in enumerate([red, blue, other])
        ]
        for alert in alerts:
            sekoia.put_alert(alert)
        await wait_notified(loopback, 2)
        await passes(sekoia, 4)
        assert sorted(map(alert_uuid, notified(loopback))) == [a["uuid"] for a in alerts[:2]]
        asked = {q.get("match[community_uuid]") for q in sekoia.list_queries}
        assert asked == {red, blue}
        # One reading of both communities: one report.
        (report,) = [o["event"] for o in await wait_notified(loopback, 1, "/ops")]
        assert report["count"] == 2 and report["stream"] == f"{red}, {blue}"
        assert sorted(report["ids"]) == [a["short_id"] for a in alerts[:2]]
    finally:
        await runner.stop_all()


async def test_a_list_that_ignores_offset_does_not_hold_reconciliation_in_a_loop(
    notirouter: Notirouter, sekoia: FakeSekoia, loopback: LoopbackServer
) -> None:
    _, _, log = await notirouter.start()
    await wait_for_log(log, "reconciliation of all starts from now")
    sekoia.ignore_offset = True
    now = int(time.time())
    for alert in [new_alert(n, now) for n in range(900, 915)]:
        sekoia.put_alert(alert)
    await wait_for_log(log, "the API repeated a page; stopped")
    first_page = await wait_notified(loopback, PAGE)
    await passes(sekoia, 2)
    assert len(notified(loopback)) == PAGE == len({alert_uuid(b) for b in first_page})
