"""``notirouter status``: the queue by state and by sink, on both backends, with and without
a running ``serve``."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from notirouter.cli import main
from notirouter.config.models import QueueConfig
from tests.backends import Backend
from tests.loopback import LoopbackServer, Reply
from tests.serving import serve
from tests.test_delivery import config, event, post_events, second_loopback

__all__ = ["second_loopback"]

SECRET = "s3cr3t-path-0123456789"


async def status(path: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> str:
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["status", *flags, "-c", str(path)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


async def status_json(path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    view: dict[str, Any] = json.loads(await status(path, capsys, "--json"))
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
        for _ in range(300):  # at most 15 s
            view = await status_json(path, capsys)
            by_sink = {s["sink"]: s for s in view["sinks"]}
            if by_sink.get("ok", {}).get("done") == 2 and by_sink.get("down", {}).get(
                "paused_until"
            ):
                break
            await asyncio.sleep(0.05)
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
        for _ in range(300):
            view = await status_json(path, capsys)
            if view["dead_letters"] == {"deliveries": 1, "events": 1}:
                break
            await asyncio.sleep(0.05)
        assert view["dead_letters"] == {"deliveries": 1, "events": 1}
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
