"""``notirouter status``: the queue by state and by sink, on both backends, with and without
a running ``serve``."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from notirouter.api.sink import Sink
from notirouter.cli import main
from notirouter.config.models import QueueConfig
from notirouter.delivery.dispatcher import sink_redactor
from notirouter.operations.process_state import safe_status
from tests.backends import Backend
from tests.commands import SECRET, cli_json, run_cli, wait_until
from tests.loopback import LoopbackServer, Reply
from tests.sekoia_fixtures import API_KEY, Failure, FakeSekoia, alert_event, metadata
from tests.serve_process import free_port, start_serve, wait_exit
from tests.serving import config, event, post_events, serve


async def status(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """``status`` as text; it must exit 0."""
    code, out, err = await run_cli(["status", "-c", str(path)], capsys)
    assert code == 0, err
    return out


async def status_json(path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """``status --json``; it must exit 0."""
    view: dict[str, Any] = await cli_json(["status", "--json", "-c", str(path)], capsys)
    return view


async def test_status_shows_backlog_pause_last_error_and_dead_letters_per_sink(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    second_loopback: LoopbackServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # "down" answers 503 with a long Retry-After and echoes its URL's secret; "ok" accepts
    # what "refuses" (the same server, another path) refuses for good.
    second_loopback.reply(Reply(503, f"overloaded {SECRET}", {"Retry-After": "600"}))
    loopback.reply(Reply(200, "ok"))
    sinks = (
        f'  ok: {{type: webhook, url: "{loopback.url}/ok"}}\n'
        f'  down: {{type: webhook, url: "{second_loopback.url}/{SECRET}", concurrency: 1}}'
    )
    routes = "  - {name: all, sinks: [ok, down]}"
    path = write_config(config(queue_backend, sinks, routes))
    async with serve(path) as served:
        await post_events(served, [event(1), event(2)])

        def settled(view: dict[str, Any]) -> bool:
            by_sink = {s["sink"]: s for s in view["sinks"]}
            return by_sink.get("ok", {}).get("done") == 2 and bool(
                by_sink.get("down", {}).get("paused_until")
            )

        await wait_until(lambda: status_json(path, capsys), settled, what="ok done and down paused")
        assert len(second_loopback.requests) == 1  # the pause holds the second delivery

    # A plain read of the queue: no server is needed.
    view = await status_json(path, capsys)
    assert view["backend"] == queue_backend.name
    assert view["events"] == {"routed": 2}
    assert view["deliveries"] == {"done": 2, "pending": 2}
    assert view["dead_letters"] == {"deliveries": 0, "events": 0}
    assert view["storm"] == []  # no sink ever stormed
    ok, down = sorted(view["sinks"], key=lambda s: s["sink"] != "ok")
    assert (ok["done"], ok["pending"], ok["last_error"]) == (2, 0, None)
    assert (down["pending"], down["done"], down["dead"]) == (2, 0, 0)
    assert down["last_outcome"] == "retry"
    assert down["last_error"].startswith("HTTP 503: overloaded")
    paused_until = datetime.fromisoformat(down["paused_until"]).timestamp()
    assert paused_until - time.time() > 500
    oldest = view["oldest_due_delivery"]
    assert oldest is not None and oldest["sink"] == "down" and oldest["attempts"] == 0
    assert SECRET not in json.dumps(view)

    text = await status(path, capsys)
    assert "dead letters: 0 deliveries, 0 events not routed" in text
    lines = text.splitlines()
    header = lines.index(
        "SINK\tPENDING\tDUE\tDONE\tDEAD\tNEXT DUE\tPAUSED UNTIL\tLAST ERROR AT\tLAST ERROR"
    )
    rows = {line.split("\t")[0]: line.split("\t") for line in lines[header + 1 :]}
    assert rows["ok"][1:5] == ["0", "0", "2", "0"]
    assert rows["down"][1] == "2" and rows["down"][6] == down["paused_until"]
    assert rows["down"][8].startswith("HTTP 503: overloaded")
    assert SECRET not in text


async def test_status_counts_dead_letters_and_failed_events(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    loopback.reply(Reply(400, "invalid payload"))
    sinks = f'  forward: {{type: webhook, url: "{loopback.url}"}}'
    path = write_config(config(queue_backend, sinks, "  - {name: all, sinks: [forward]}"))
    async with serve(path) as served:
        await post_events(served, [event(1)])
        await served.runtime.queue.enqueue(
            hook="sekoia", source="sekoia", dedupe_key="k", body=b"not json"
        )
        view = await wait_until(
            lambda: status_json(path, capsys),
            lambda v: v["dead_letters"] == {"deliveries": 1, "events": 1},
            what="a dead delivery and a failed event",
        )
        [forward] = view["sinks"]
        assert (forward["dead"], forward["last_outcome"]) == (1, "permanent")
        assert forward["last_error"] == "HTTP 400: invalid payload"
        assert view["oldest_due_delivery"] is None


def test_status_of_a_missing_queue_fails_with_exit_code_1(
    tmp_path: Path, write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(
        config(
            Backend("sqlite", QueueConfig(path=str(tmp_path / "none.db"))),
            "  l: {type: log}",
            "  - {name: all, sinks: [l]}",
        )
    )
    assert main(["status", "-c", str(path)]) == 1
    assert "none.db" in capsys.readouterr().err


def sekoia_config(backend: Backend, api: str, sink: str, interval: str = "200ms") -> str:
    """One enriched route, a Sekoia.io API on loopback and an often-written process report."""
    return config(
        backend,
        f'  forward: {{type: webhook, url: "{sink}/{SECRET}", concurrency: 2}}',
        "  - {name: enriched, enrich: [sekoia], sinks: [forward]}",
    ) + (
        f"server: {{status_interval: {interval}}}\n"
        "enrichers:\n"
        f'  sekoia: {{type: sekoia, api_key: {API_KEY}, base_url: "{api}", region: fra1,'
        " attempts: 1, circuit_failures: 3, circuit_cooldown: 10m,"
        " circuit_cooldown_max: 10m}\n"
    )


def updated(n: int, *, other_alert: bool = False) -> dict[str, Any]:
    """An update of the fixtures' alert, or of another one (which no cached copy can answer)."""
    ids = {"uuid": f"10000000-0000-4000-8000-{n:012d}", "short_id": f"ALother{n:05d}"}
    event = alert_event("updated", **(ids if other_alert else {}))
    event["metadata"] = metadata(uuid=f"00000000-0000-4000-8000-{n:012d}")
    return event


async def post_to(port: int, events: list[dict[str, Any]]) -> None:
    await post_events(f"http://127.0.0.1:{port}", events)


def sekoia_state(view: dict[str, Any]) -> dict[str, Any] | None:
    """The Sekoia.io enricher's own state in the only live process, if it reported one."""
    if len(view["processes"]) != 1:
        return None
    found: dict[str, Any] | None = view["processes"][0]["enrichers"].get("sekoia", {}).get("plugin")
    return found


async def test_status_shows_each_serving_process_cache_circuit_and_sinks(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    tmp_path: Path,
    loopback: LoopbackServer,
    second_loopback: LoopbackServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sekoia = FakeSekoia(second_loopback)
    path = write_config(sekoia_config(queue_backend, sekoia.url, loopback.url))
    argv = ["status", "--json", "-c", str(path)]
    port = free_port()
    process = await start_serve(path, port, tmp_path / "serve.log")
    try:
        # Enriched once: the alert was fetched and is cached; the circuit is closed.
        await post_to(port, [updated(1)])
        await loopback.wait_for(1, timeout=30)
        view = await wait_until(
            lambda: cli_json(argv, capsys),
            lambda v: (
                (sekoia_state(v) or {}).get("cache", {}).get("entries") == 1
                and v["processes"][0]["sinks"]["forward"]["in_flight"] == 0
            ),
            what="the cached alert shown, the delivery finished",
        )
        [me] = view["processes"]
        assert me["pid"] == process.pid and me["workers"] is True
        state = sekoia_state(view)
        assert state is not None
        assert state["cache"]["misses"] >= 1 and state["cache"]["hits"] == 0
        assert state["circuit"]["state"] == "closed"
        forward = me["sinks"]["forward"]
        assert (forward["health"], forward["in_flight"], forward["concurrency"]) == ("ok", 0, 2)
        assert view["stopped_reporting"] == []

        # The API fails every request: after three in a row the circuit opens.
        sekoia.fail(Failure(503))
        await post_to(port, [updated(n, other_alert=True) for n in range(2, 6)])
        view = await wait_until(
            lambda: cli_json(argv, capsys),
            lambda v: (sekoia_state(v) or {}).get("circuit", {}).get("state") == "open",
            what="the circuit shown open",
        )
        circuit = sekoia_state(view)["circuit"]  # type: ignore[index]
        assert circuit["consecutive_failures"] == 3 and circuit["threshold"] == 3
        assert 0 < circuit["next_probe_in_seconds"] <= 600
        text = await status(path, capsys)
        assert "processes: 1 live" in text
        assert f"/{process.pid}/" in text
        assert "  enricher sekoia: cache.entries=1 " in text and " circuit.state=open " in text
        assert "  sink forward: " in text
        assert API_KEY not in text and SECRET not in text and API_KEY not in json.dumps(view)
    finally:
        process.terminate()
        assert await wait_exit(process, 30) == 0
    # A process that stopped cleanly withdrew its report.
    view = await status_json(path, capsys)
    assert (view["processes"], view["stopped_reporting"]) == ([], [])


async def test_status_shows_every_process_and_which_stopped_reporting(
    postgres_backend: Backend,
    write_config: Callable[..., Path],
    tmp_path: Path,
    loopback: LoopbackServer,
    second_loopback: LoopbackServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sekoia = FakeSekoia(second_loopback)
    path = write_config(sekoia_config(postgres_backend, sekoia.url, loopback.url))
    argv = ["status", "--json", "-c", str(path)]
    first_port, second_port = free_port(), free_port()
    first = await start_serve(path, first_port, tmp_path / "first.log")
    second = await start_serve(path, second_port, tmp_path / "second.log")
    try:
        await post_to(second_port, [updated(1)])
        await loopback.wait_for(1, timeout=30)

        def by_pid(view: dict[str, Any]) -> dict[int, dict[str, Any]]:
            return {p["pid"]: p for p in view["processes"]}

        def cached(view: dict[str, Any]) -> list[int]:
            return sorted(
                p["enrichers"]["sekoia"]["plugin"]["cache"]["entries"] for p in view["processes"]
            )

        # Whichever process routed the event fetched the alert; each has its own memory, so
        # the other has nothing cached.
        await wait_until(
            lambda: cli_json(argv, capsys),
            lambda v: set(by_pid(v)) == {first.pid, second.pid} and cached(v) == [0, 1],
            what="both processes shown, one with the cached alert",
        )

        # Killed, the first cannot withdraw its report: it drops out when the report expires.
        first.send_signal(signal.SIGKILL)
        first.wait()
        view = await wait_until(
            lambda: cli_json(argv, capsys),
            lambda v: set(by_pid(v)) == {second.pid},
            what="the killed process dropped from the live ones",
        )
        [gone] = view["stopped_reporting"]
        assert gone["pid"] == first.pid
    finally:
        for process in (first, second):
            process.terminate()
            await wait_exit(process, 30)


async def test_a_plugin_sink_shows_its_own_state(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The example third-party plugin's sink counts the lines it wrote, in Sink.status().
    sinks = f'  file: {{type: jsonl, path: "{tmp_path / "out.jsonl"}"}}'
    text = config(queue_backend, sinks, "  - {name: all, sinks: [file]}")
    path = write_config(text + "server: {status_interval: 200ms}\n")
    async with serve(path) as served:
        await post_events(served, [event(1), event(2)])
        view = await wait_until(
            lambda: status_json(path, capsys),
            lambda v: (
                [p["sinks"]["file"]["plugin"] for p in v["processes"]] == [{"lines_written": 2}]
            ),
            what="the sink's two lines shown",
        )
        assert view["processes"][0]["pid"] == os.getpid()
        assert "  sink file: " in await status(path, capsys)


def test_a_plugin_state_is_redacted_and_a_failing_status_is_reported(
    make_sink: Callable[..., Sink[Any]],
) -> None:
    sink = make_sink("webhook", url=f"https://hooks.example.com/{SECRET}")
    leaky = {"endpoint": f"https://hooks.example.com/{SECRET}", "tries": [{"key": SECRET}]}
    shown = safe_status("sink under-test", lambda: leaky, sink_redactor(sink))
    assert SECRET not in json.dumps(shown)
    assert "***" in shown["endpoint"] and shown["tries"] == [{"key": "***"}]

    def broken() -> dict[str, Any]:
        raise RuntimeError(SECRET)

    assert safe_status("sink under-test", broken, sink_redactor(sink)) == {
        "error": "status() raised RuntimeError"
    }
