"""``dead list``: tables with a header row (tab-separated, one column per field), or ``--json``."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from notirouter.cli import main
from notirouter.config.models import QueueConfig
from tests.backends import Backend
from tests.loopback import LoopbackServer, Reply
from tests.serving import config, event, post_events, serve


def dead_counts(db: Path) -> tuple[int, int]:
    with sqlite3.connect(db) as connection:
        [(deliveries,)] = connection.execute("SELECT COUNT(*) FROM deliveries WHERE state = 'dead'")
        [(events,)] = connection.execute("SELECT COUNT(*) FROM events WHERE state = 'failed'")
    return deliveries, events


async def test_dead_list_prints_each_table_under_its_header_row(
    tmp_path: Path,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    loopback.reply(Reply(400, "invalid payload"))
    db = tmp_path / "q.db"
    sinks = f'  forward: {{type: webhook, url: "{loopback.url}"}}'
    backend = Backend("sqlite", QueueConfig(path=str(db)))
    path = write_config(config(backend, sinks, "  - {name: everything, sinks: [forward]}"))
    async with serve(path) as served:
        await post_events(served, [event(1)])
        unreadable = await served.runtime.queue.enqueue(
            hook="sekoia", source="sekoia", dedupe_key="k", body=b"not json"
        )
        for _ in range(500):  # at most 10 s
            if dead_counts(db) == (1, 1):
                break
            await asyncio.sleep(0.02)
    assert dead_counts(db) == (1, 1)
    capsys.readouterr()

    assert await asyncio.to_thread(main, ["dead", "list", "-c", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split("\t") == [
        *("DELIVERY", "DIED AT", "SINK", "ROUTE", "ATTEMPTS", "EVENT", "ERROR"),
    ]
    delivery = dict(zip(lines[0].split("\t"), lines[1].split("\t"), strict=True))
    assert (delivery["SINK"], delivery["ROUTE"], delivery["ATTEMPTS"]) == (
        "forward",
        "everything",
        "1",
    )
    assert delivery["ERROR"] == "HTTP 400: invalid payload"
    assert lines[2] == ""
    assert lines[3].split("\t") == ["EVENT NOT ROUTED", "RECEIVED AT", "HOOK", "ATTEMPTS", "ERROR"]
    failed = dict(zip(lines[3].split("\t"), lines[4].split("\t"), strict=True))
    assert (failed["EVENT NOT ROUTED"], failed["HOOK"]) == (unreadable.id, "sekoia")
    assert len(lines) == 5

    assert await asyncio.to_thread(main, ["dead", "list", "--json", "-c", str(path)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["kind"] for row in rows] == ["delivery", "event"]
    assert rows[0]["event_id"] == delivery["EVENT"]
    assert rows[0]["error"] == "HTTP 400: invalid payload"
    assert rows[1]["id"] == unreadable.id
