"""Delivery outcomes recorded together: many per round trip, none lost to a neighbour's fault.

Outcomes that arrive while the previous ones are being written share the next write (one
statement on PostgreSQL, one group-committed transaction on SQLite). A batch where one outcome
cannot be stored still records every other one, and only that caller learns of the failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from notirouter.queue.postgres.queue import PostgresQueue
from notirouter.queue.protocol import Queue
from notirouter.queue.records import NewDelivery, StoredDelivery, StoredEvent
from tests.backends import Backend


@pytest.fixture
async def queue(queue_backend: Backend) -> AsyncIterator[Queue]:
    q = queue_backend.make()
    await q.open()
    yield q
    await q.close()


async def claimed_jobs(queue: Queue, count: int) -> list[StoredDelivery]:
    """``count`` deliveries for sink ``a``, claimed in one claim."""
    for n in range(count):
        await queue.enqueue(hook="h", source="sekoia", dedupe_key=f"k{n}", body=b"{}")
    events = await queue.claim_events(count, lease_seconds=30)
    for event in events:
        assert await queue.complete_event(event, [NewDelivery("r", "a", "{}")])
    jobs = await queue.claim_deliveries("a", count, lease_seconds=30)
    assert len(jobs) == count
    return jobs


async def states(queue: Queue) -> dict[str, int]:
    return {k: v for k, v in (await queue.counts()).items() if k.startswith("deliveries_")}


async def test_outcomes_arriving_together_are_all_recorded(queue: Queue) -> None:
    jobs = await claimed_jobs(queue, 20)
    results = await asyncio.gather(
        *(queue.finish_delivery(job, state="done", error=None) for job in jobs[:15]),
        *(
            queue.finish_delivery(job, state="pending", error="HTTP 503", retry_in=60)
            for job in jobs[15:]
        ),
    )
    assert results == [True] * 20
    assert await states(queue) == {"deliveries_done": 15, "deliveries_pending": 5}
    story = await queue.inspection().event_story(jobs[19].event_id)
    assert story is not None
    [delivery] = story.deliveries
    assert [(a.outcome, a.detail) for a in delivery.history] == [("retry", "HTTP 503")]


async def test_a_lost_lease_in_a_batch_refuses_only_that_outcome(queue: Queue) -> None:
    jobs = await claimed_jobs(queue, 4)
    stale = StoredDelivery(**{**_fields(jobs[1]), "lease": jobs[1].lease + 1})
    results = await asyncio.gather(
        queue.finish_delivery(jobs[0], state="done", error=None),
        queue.finish_delivery(stale, state="done", error=None),
        queue.finish_delivery(jobs[2], state="dead", error="HTTP 400"),
        queue.finish_delivery(jobs[3], state="done", error=None),
    )
    assert results == [True, False, True, True]
    assert await states(queue) == {
        "deliveries_done": 2,
        "deliveries_dead": 1,
        "deliveries_pending": 1,
    }


async def test_an_outcome_that_cannot_be_stored_does_not_lose_the_others(queue: Queue) -> None:
    jobs = await claimed_jobs(queue, 6)
    # A lone surrogate cannot be encoded for SQLite or PostgreSQL: that one write fails.
    results = await asyncio.gather(
        *(queue.finish_delivery(job, state="done", error=None) for job in jobs[:3]),
        queue.finish_delivery(jobs[3], state="pending", error="bad \ud800 text", retry_in=1),
        *(queue.finish_delivery(job, state="done", error=None) for job in jobs[4:]),
        return_exceptions=True,
    )
    assert results[:3] == [True] * 3 and results[4:] == [True] * 2
    assert isinstance(results[3], Exception)
    assert await states(queue) == {"deliveries_done": 5, "deliveries_pending": 1}


async def test_postgres_writes_waiting_outcomes_in_one_statement(
    postgres_backend: Backend,
) -> None:
    queue = postgres_backend.make()
    await queue.open()
    try:
        assert isinstance(queue, PostgresQueue)
        jobs = await claimed_jobs(queue, 30)
        results = await asyncio.gather(
            *(queue.finish_delivery(job, state="done", error=None) for job in jobs)
        )
        assert results == [True] * 30
        # Rows written by one statement carry its transaction id: one for all thirty.
        writers = await queue.pool.fetchval(
            "SELECT COUNT(DISTINCT xmin::text) FROM deliveries WHERE state = 'done'"
        )
        attempts = await queue.pool.fetchval(
            "SELECT COUNT(DISTINCT xmin::text) FROM delivery_attempts"
        )
        # A NUL is refused by the server: that outcome alone fails, the others are recorded.
        more = await claimed_jobs_again(queue, 5)
        mixed = await asyncio.gather(
            queue.finish_delivery(more[0], state="done", error=None),
            queue.finish_delivery(more[1], state="dead", error="nul \x00 here"),
            *(queue.finish_delivery(job, state="done", error=None) for job in more[2:]),
            return_exceptions=True,
        )
    finally:
        await queue.close()
    assert writers == 1 and attempts == 1
    assert mixed[0] is True and mixed[2:] == [True] * 3
    assert isinstance(mixed[1], Exception)


async def claimed_jobs_again(queue: Queue, count: int) -> list[StoredDelivery]:
    for n in range(count):
        await queue.enqueue(hook="h", source="sekoia", dedupe_key=f"again{n}", body=b"{}")
    events = await queue.claim_events(count, lease_seconds=30)
    for event in events:
        assert await queue.complete_event(event, [NewDelivery("r", "b", "{}")])
    return await queue.claim_deliveries("b", count, lease_seconds=30)


def _fields(job: StoredDelivery) -> dict[str, object]:
    return {name: getattr(job, name) for name in StoredDelivery.__slots__}


async def test_events_routed_together_keep_their_own_outcomes(queue: Queue) -> None:
    for n in range(6):
        await queue.enqueue(hook="h", source="sekoia", dedupe_key=f"k{n}", body=b"{}")
    events = await queue.claim_events(6, lease_seconds=30)
    stale = StoredEvent(**{**_event_fields(events[1]), "lease": events[1].lease + 1})
    results = await asyncio.gather(
        queue.complete_event(events[0], [NewDelivery("r", "a", "{}")]),
        queue.complete_event(stale, [NewDelivery("r", "a", "{}")]),
        # A lone surrogate cannot be stored: that event alone stays pending, with no job.
        queue.complete_event(events[2], [NewDelivery("r", "a", '{"t": "\ud800"}')]),
        *(queue.complete_event(e, [NewDelivery("r", "a", "{}")]) for e in events[3:]),
        return_exceptions=True,
    )
    assert results[0] is True and results[1] is False and results[3:] == [True] * 3
    assert isinstance(results[2], Exception)
    counts = await queue.counts()
    assert counts["events_routed"] == 4 and counts["events_pending"] == 2
    assert counts["deliveries_pending"] == 4
    jobs = await queue.claim_deliveries("a", 10, lease_seconds=30)
    assert sorted(j.event_id for j in jobs) == sorted([events[0].id, *(e.id for e in events[3:])])


def _event_fields(event: StoredEvent) -> dict[str, object]:
    return {name: getattr(event, name) for name in StoredEvent.__slots__}
