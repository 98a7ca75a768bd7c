"""Retention: finished events go once ``queue.retention`` has passed, and only those.

Under steady traffic the queue stops growing: the rows of finished events are pruned (in
batches of at most 500 per transaction) while an event with a pending or dead delivery stays,
and on SQLite the pages they held are reused rather than added.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from notirouter.config.errors import ConfigError
from notirouter.config.loader import load_config_text
from notirouter.queue.protocol import Queue
from notirouter.queue.records import NewDelivery
from notirouter.queue.retention import PRUNE_BATCH_ROWS
from notirouter.runtime import Runtime
from tests.backends import Backend

ROUND_EVENTS = PRUNE_BATCH_ROWS + 100  # more than one batch of every kind each round
ROUNDS = 3


def test_retention_defaults_to_seven_days(tmp_path: Path) -> None:
    config = load_config_text("queue: {path: q.db}\n", str(tmp_path / "c.yaml"))
    assert config.app.queue.retention == 7 * 86_400


def test_retention_shorter_than_the_dedupe_window_is_refused_at_its_place(
    tmp_path: Path,
) -> None:
    text = "queue:\n  dedupe_window: 2d\n  retention: 1d\n"
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, str(tmp_path / "c.yaml"))
    [problem] = caught.value.problems
    assert (problem.position.line, problem.position.column) == (3, 14)
    assert "must not be shorter than dedupe_window" in problem.message


async def _steady_round(queue: Queue, round_number: int) -> tuple[str, str]:
    """One round of traffic: finished events, and two that must stay (pending, dead)."""
    for i in range(ROUND_EVENTS + 2):
        await queue.enqueue(hook="h", source="sekoia", dedupe_key=f"{round_number}-{i}", body=b"{}")
    events = await queue.claim_events(ROUND_EVENTS + 2, 60)
    assert len(events) == ROUND_EVENTS + 2
    kept, finished = events[:2], events[2:]
    for event in finished:
        assert await queue.complete_event(event, [NewDelivery("r", "s", "{}")])
    for event in kept:
        assert await queue.complete_event(event, [NewDelivery("r", "keep", "{}")])
    deliveries = await queue.claim_deliveries("s", ROUND_EVENTS, 60)
    assert len(deliveries) == ROUND_EVENTS
    for delivery in deliveries:
        assert await queue.finish_delivery(delivery, state="done", error=None)
    pending, dead = sorted(await queue.claim_deliveries("keep", 2, 60), key=lambda d: d.id)
    await queue.finish_delivery(pending, state="pending", error="HTTP 503", retry_in=3600)
    await queue.finish_delivery(dead, state="dead", error="HTTP 404")
    return pending.event_id, dead.event_id


def _pages(path: str) -> int:
    with sqlite3.connect(path) as connection:
        pages: int = connection.execute("PRAGMA page_count").fetchone()[0]
    return pages


async def test_steady_traffic_stops_growing_and_keeps_unfinished_events(
    queue_backend: Backend, tmp_path: Path
) -> None:
    queue_yaml = queue_backend.yaml()[:-1] + ", dedupe_window: 1s, retention: 1s}"
    yaml = f"queue: {queue_yaml}\nsinks: {{s: {{type: log}}, keep: {{type: log}}}}\n"
    runtime = Runtime(load_config_text(yaml, str(tmp_path / "c.yaml")))
    assert runtime.config.app.queue.retention == 1.0
    await runtime.queue.open()
    try:
        must_stay: list[str] = []
        pages: list[int] = []
        for round_number in range(ROUNDS):
            must_stay.extend(await _steady_round(runtime.queue, round_number))
            await asyncio.sleep(1.1)  # past the retention
            await runtime.housekeep()
            counts = await runtime.queue.counts()
            kept = 2 * (round_number + 1)
            assert counts.get("events_routed") == kept
            assert counts.get("deliveries_pending") == kept // 2
            assert counts.get("deliveries_dead") == kept // 2
            assert counts.get("deliveries_done", 0) == 0
            if queue_backend.name == "sqlite":
                pages.append(_pages(queue_backend.settings.path))
        # Every event with a pending or dead delivery is still there, with its delivery.
        dead_events = {
            letter.event_id for letter in await runtime.queue.dead_letters().deliveries()
        }
        assert dead_events == set(must_stay[1::2])
        due = await runtime.queue.next_delivery_due("keep")
        assert due is not None
        if pages:
            # Pages freed by a prune are reused by the next round: the file stops growing.
            assert pages[-1] <= pages[0] + 2, pages
    finally:
        await runtime.queue.close()
