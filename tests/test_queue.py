"""The queue on every backend: durability, leases, dedupe window, dead letters, housekeeping.

Each test runs on SQLite and on PostgreSQL (``queue_backend``); the last ones are SQLite's own
(group commit next to a reader, the file an operator command must not create).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from notirouter.queue.protocol import Queue, QueueUnavailable
from notirouter.queue.records import NewDelivery
from notirouter.queue.sqlite.queue import SqliteQueue
from tests.backends import Backend


@pytest.fixture
async def queue(queue_backend: Backend) -> AsyncIterator[Queue]:
    q = queue_backend.make(dedupe_window=3600)
    await q.open()
    yield q
    await q.close()


async def enqueue(queue: Queue, key: str, body: bytes = b"{}") -> str:
    result = await queue.enqueue(hook="h", source="sekoia", dedupe_key=key, body=body)
    return result.id


async def test_concurrent_enqueues_all_commit_and_survive_reopen(queue_backend: Backend) -> None:
    queue = queue_backend.make()
    await queue.open()
    results = await asyncio.gather(
        *(queue.enqueue(hook="h", source="s", dedupe_key=f"k{i}", body=b"x") for i in range(300))
    )
    await queue.close()
    assert len({r.id for r in results}) == 300
    assert not any(r.duplicate for r in results)
    reopened = queue_backend.make()
    await reopened.open(create=False)
    try:
        assert await reopened.counts() == {"events_pending": 300}
    finally:
        await reopened.close()


async def test_concurrent_duplicates_resolve_to_one_event(queue: Queue) -> None:
    results = await asyncio.gather(
        *(queue.enqueue(hook="h", source="s", dedupe_key="same", body=b"x") for _ in range(20))
    )
    assert len({r.id for r in results}) == 1
    assert sum(not r.duplicate for r in results) == 1


async def test_dedupe_window_expiry_makes_the_key_new_again(queue_backend: Backend) -> None:
    queue = queue_backend.make(dedupe_window=0.2)
    await queue.open()
    first = await queue.enqueue(hook="h", source="s", dedupe_key="k", body=b"x")
    assert (await queue.enqueue(hook="h", source="s", dedupe_key="k", body=b"x")).duplicate
    await asyncio.sleep(0.3)
    later = await queue.enqueue(hook="h", source="s", dedupe_key="k", body=b"x")
    await queue.close()
    assert not later.duplicate and later.id != first.id


async def test_claimed_event_is_invisible_until_its_lease_expires(queue: Queue) -> None:
    event_id = await enqueue(queue, "k")
    [claimed] = await queue.claim_events(10, lease_seconds=0.3)
    assert claimed.id == event_id and claimed.attempts == 1
    assert await queue.claim_events(10, lease_seconds=0.3) == []
    await asyncio.sleep(0.35)
    [again] = await queue.claim_events(10, lease_seconds=30)
    assert again.id == event_id and again.attempts == 2
    # The first worker's lease is gone: it cannot complete the event any more.
    assert not await queue.complete_event(claimed, [NewDelivery("r", "s", "{}")])
    assert await queue.complete_event(again, [NewDelivery("r", "s", "{}")])


async def test_completion_creates_deliveries_once(queue: Queue) -> None:
    await enqueue(queue, "k")
    [event] = await queue.claim_events(1, 30)
    jobs = [
        NewDelivery("r1", "a", "{}"),
        NewDelivery("r1", "b", "{}"),
        NewDelivery("r1", "a", "{}"),
    ]
    assert await queue.complete_event(event, jobs)
    assert [d.sink for d in await queue.claim_deliveries("a", 10, 30)] == ["a"]
    assert [d.sink for d in await queue.claim_deliveries("b", 10, 30)] == ["b"]
    assert await queue.claim_events(1, 30) == []


async def test_delivery_retry_dead_and_replay(queue: Queue) -> None:
    await enqueue(queue, "k")
    [event] = await queue.claim_events(1, 30)
    await queue.complete_event(event, [NewDelivery("r", "s", '{"title": "t"}')])
    [delivery] = await queue.claim_deliveries("s", 10, 30)
    assert await queue.finish_delivery(delivery, state="pending", error="HTTP 500", retry_in=0.2)
    assert await queue.claim_deliveries("s", 10, 30) == []
    due = await queue.next_delivery_due("s")
    assert due is not None and due > time.time()
    await asyncio.sleep(0.25)
    [retry] = await queue.claim_deliveries("s", 10, 30)
    assert retry.attempts == 2
    assert await queue.finish_delivery(retry, state="dead", error="HTTP 404: gone")
    [dead] = await queue.dead_letters().deliveries(bodies=True)
    assert (dead.id, dead.sink, dead.attempts, dead.last_error) == (
        retry.id,
        "s",
        2,
        "HTTP 404: gone",
    )
    assert dead.event_body == b"{}"
    assert await queue.dead_letters().replay_deliveries([dead.id, 999]) == [dead.id]
    assert await queue.dead_letters().deliveries() == []
    [replayed] = await queue.claim_deliveries("s", 10, 30)
    assert replayed.attempts == 1


async def test_purge_and_prune(queue: Queue) -> None:
    await enqueue(queue, "k")
    [event] = await queue.claim_events(1, 30)
    await queue.complete_event(event, [NewDelivery("r", "ok", "{}"), NewDelivery("r", "bad", "{}")])
    [good] = await queue.claim_deliveries("ok", 1, 30)
    [bad] = await queue.claim_deliveries("bad", 1, 30)
    await queue.finish_delivery(good, state="done", error=None)
    await queue.finish_delivery(bad, state="dead", error="refused")
    assert await queue.prune(older_than=0) == 0  # a dead letter keeps its event
    assert await queue.dead_letters().purge() == (1, 0)
    assert await queue.prune(older_than=0) == 1
    assert await queue.counts() == {}


async def test_wakeup_is_set_by_commits(queue: Queue) -> None:
    wakeup = queue.wakeup("events")
    wakeup.clear()
    await enqueue(queue, "k")
    assert wakeup.is_set()


async def test_deliveries_for_unconfigured_sinks_become_dead_letters(queue: Queue) -> None:
    await enqueue(queue, "k")
    [event] = await queue.claim_events(1, 30)
    await queue.complete_event(
        event, [NewDelivery("r", "kept", "{}"), NewDelivery("r", "gone", "{}")]
    )
    assert await queue.bury_orphans(["kept"]) == {"gone": 1}
    assert await queue.bury_orphans(["gone", "kept"]) == {}
    [dead] = await queue.dead_letters().deliveries()
    assert (dead.sink, dead.last_error) == ("gone", "sink gone is not configured")
    assert [d.sink for d in await queue.claim_deliveries("kept", 10, 30)] == ["kept"]


async def test_failed_events_are_listed_replayed_and_purged(queue: Queue) -> None:
    event_id = await enqueue(queue, "k", b'{"type": "x"}')
    [event] = await queue.claim_events(1, 30)
    await queue.retry_event(event, 0, "cannot parse with source 'gone'", dead=True)
    dead = queue.dead_letters()
    [failed] = await dead.events()
    assert (failed.id, failed.last_error, failed.body) == (
        event_id,
        "cannot parse with source 'gone'",
        b'{"type": "x"}',
    )
    assert await queue.claim_events(1, 30) == []
    assert await dead.replay_events([event_id, "0" * 32]) == [event_id]
    [again] = await queue.claim_events(1, 30)
    assert (again.id, again.attempts) == (event_id, 1)
    # Given up on a retry that would have been an hour away: purged from the moment it died.
    await queue.retry_event(again, 3600, "still broken", dead=True)
    assert await dead.purge() == (0, 1)
    assert await dead.events() == []


async def test_reads_do_not_hold_the_write_lock(tmp_path: Path) -> None:
    queue = SqliteQueue(tmp_path / "q.db", busy_timeout=0.2)
    await queue.open()
    await enqueue(queue, "k")
    reader = sqlite3.connect(tmp_path / "q.db")
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM events").fetchone()  # a long reader, like dead list
    try:
        assert not (await queue.enqueue(hook="h", source="s", dedupe_key="k2", body=b"x")).duplicate
        assert await queue.counts() == {"events_pending": 2}
    finally:
        reader.rollback()
        reader.close()
        await queue.close()


async def test_operator_commands_do_not_create_a_queue(tmp_path: Path) -> None:
    queue = SqliteQueue(tmp_path / "missing" / "q.db")
    with pytest.raises(QueueUnavailable, match="no queue file at"):
        await queue.open(create=False)
    assert not (tmp_path / "missing").exists()


async def test_with_no_sink_configured_every_pending_delivery_is_an_orphan(
    queue: Queue,
) -> None:
    await enqueue(queue, "k")
    [event] = await queue.claim_events(1, 30)
    await queue.complete_event(event, [NewDelivery("r", "a", "{}"), NewDelivery("r", "b", "{}")])
    assert await queue.bury_orphans([]) == {"a": 1, "b": 1}
