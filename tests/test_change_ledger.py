"""The reconciliation state of the queue, on every backend: the poller's lease, the watermark
that moves only with what was committed, and change keys that make a change seen by a webhook
and by reconciliation notified once, whichever comes first.

Two queue objects on one store play two processes: on SQLite two connections to one file, on
PostgreSQL two pools.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from notirouter.queue.protocol import Queue
from notirouter.queue.records import ChangeMark, NewChange, NewDelivery
from tests.backends import Backend

STREAM = "sekoia:all"


@pytest.fixture
async def queues(queue_backend: Backend) -> AsyncIterator[tuple[Queue, Queue]]:
    first, second = queue_backend.make(), queue_backend.make()
    await first.open()
    await second.open()
    yield first, second
    await first.close()
    await second.close()


def change(key: str) -> NewChange:
    return NewChange(key, "reconcile:sekoia", "sekoia", json.dumps({"key": key}).encode())


async def test_one_holder_at_a_time_and_a_released_lease_is_taken_at_once(
    queues: tuple[Queue, Queue],
) -> None:
    a, b = (q.changes() for q in queues)
    assert await a.hold(STREAM, "a", 60)
    assert not await b.hold(STREAM, "b", 60)
    assert await a.hold(STREAM, "a", 60)  # renewed by its holder
    assert await b.hold("sekoia:other", "b", 60)  # each stream has its own lease
    await a.release(STREAM, "a")
    assert await b.hold(STREAM, "b", 60)
    assert not await a.hold(STREAM, "a", 60)


async def test_an_expired_lease_is_taken_over_and_its_old_holder_commits_nothing(
    queues: tuple[Queue, Queue],
) -> None:
    a, b = (q.changes() for q in queues)
    assert await a.hold(STREAM, "a", 0.05)
    await asyncio.sleep(0.1)
    assert await b.hold(STREAM, "b", 60)
    assert await a.commit(STREAM, "a", [change("k1")], 100.0) is None
    assert await queues[0].counts() == {}
    assert await a.watermark(STREAM) is None
    assert await b.commit(STREAM, "b", [change("k1")], 100.0) == ["k1"]
    assert await queues[0].counts() == {"events_pending": 1}


async def test_the_watermark_only_moves_forward_with_the_changes(
    queues: tuple[Queue, Queue],
) -> None:
    ledger = queues[0].changes()
    assert await ledger.hold(STREAM, "a", 60)
    assert await ledger.watermark(STREAM) is None
    assert await ledger.commit(STREAM, "a", [change("k1"), change("k2")], 200.0) == ["k1", "k2"]
    assert await ledger.watermark(STREAM) == 200.0
    # A page ending earlier (the same second read again) never moves it back.
    assert await ledger.commit(STREAM, "a", [change("k2"), change("k3")], 150.0) == ["k3"]
    assert await ledger.watermark(STREAM) == 200.0
    assert await queues[1].changes().watermark(STREAM) == 200.0
    claimed = await queues[0].claim_events(10, 30)
    assert sorted(json.loads(e.body)["key"] for e in claimed) == ["k1", "k2", "k3"]
    assert {e.hook for e in claimed} == {"reconcile:sekoia"}


async def route(queue: Queue, key: str, change_key: str) -> str:
    """Enqueue a webhook event and route it with one job, claiming ``change_key``; return the
    routing record stored."""
    await queue.enqueue(hook="sekoia", source="sekoia", dedupe_key=key, body=b"{}")
    (event,) = await queue.claim_events(10, 30)
    assert await queue.complete_event(
        event,
        [NewDelivery("alerts", "forward", '{"title": "t"}')],
        routing='{"seen": false}',
        change=ChangeMark(change_key, '{"seen": true}'),
    )
    story = await queue.inspection().event_story(event.id)
    assert story is not None and story.state == "routed" and story.routing is not None
    return story.routing


async def test_a_webhook_change_enqueued_by_reconciliation_first_writes_no_job(
    queues: tuple[Queue, Queue],
) -> None:
    first, second = queues
    ledger = first.changes()
    assert await ledger.hold(STREAM, "a", 60)
    assert await ledger.commit(STREAM, "a", [change("alert:1:100")], 100.0) == ["alert:1:100"]
    await first.claim_events(10, 30)  # the reconciled event, routed elsewhere
    assert await route(second, "webhook-1", "alert:1:100") == '{"seen": true}'
    assert "deliveries_pending" not in await first.counts()


async def test_a_webhook_change_first_makes_reconciliation_skip_it(
    queues: tuple[Queue, Queue],
) -> None:
    first, second = queues
    assert await route(first, "webhook-1", "alert:1:100") == '{"seen": false}'
    assert (await first.counts())["deliveries_pending"] == 1
    ledger = second.changes()
    assert await ledger.hold(STREAM, "b", 60)
    assert await ledger.commit(
        STREAM, "b", [change("alert:1:100"), change("alert:2:100")], 100.0
    ) == ["alert:2:100"]
    await second.claim_events(10, 30)  # the reconciled alert 2, routed elsewhere
    # Two webhooks of one key (Sekoia.io sent both) are both notified.
    assert await route(second, "webhook-2", "alert:1:100") == '{"seen": false}'
    assert (await first.counts())["deliveries_pending"] == 2


async def test_two_processes_committing_the_same_changes_enqueue_each_once(
    queues: tuple[Queue, Queue],
) -> None:
    # Even two holders (a lease taken over while the old holder's commit was under way) agree.
    a, b = (q.changes() for q in queues)
    assert await a.hold("s1", "a", 60)
    assert await b.hold("s2", "b", 60)
    keys = [f"alert:{n}:1" for n in range(50)]
    results = await asyncio.gather(
        *(a.commit("s1", "a", [change(k)], 1.0) for k in keys),
        *(b.commit("s2", "b", [change(k)], 1.0) for k in keys),
    )
    enqueued = [key for result in results for key in result or []]
    assert sorted(enqueued) == sorted(keys)
    assert await queues[0].counts() == {"events_pending": 50}


async def test_seen_changes_are_pruned_after_their_time(queues: tuple[Queue, Queue]) -> None:
    ledger = queues[0].changes()
    assert await ledger.hold(STREAM, "a", 60)
    await ledger.commit(STREAM, "a", [change("old")], 1.0)
    assert await ledger.prune(3600) == 0
    await asyncio.sleep(0.05)
    assert await ledger.prune(0.01) == 1
    # Forgotten: listed again, it would be enqueued again.
    assert await ledger.commit(STREAM, "a", [change("old")], 1.0) == ["old"]
