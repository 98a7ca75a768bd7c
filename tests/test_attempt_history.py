"""Per-attempt history in the queue: written with each outcome, gone with its delivery."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator

import asyncpg
import pytest

from notirouter.queue.protocol import Queue
from notirouter.queue.records import AttemptNote, NewDelivery
from notirouter.queue.sqlite.queue import SqliteQueue
from tests.backends import Backend


@pytest.fixture
async def queue(queue_backend: Backend) -> AsyncIterator[Queue]:
    opened = queue_backend.make()
    await opened.open()
    yield opened
    await opened.close()


async def attempt_rows(queue: Queue, backend: Backend) -> int:
    """Every stored attempt row, whether or not its delivery still exists."""
    if isinstance(queue, SqliteQueue):

        def count(c: sqlite3.Connection) -> int:
            return int(c.execute("SELECT COUNT(*) FROM delivery_attempts").fetchone()[0])

        return await queue.read(count)
    assert backend.settings.url is not None
    connection = await asyncpg.connect(backend.settings.url.get_secret_value())
    try:
        return int(await connection.fetchval("SELECT COUNT(*) FROM notirouter.delivery_attempts"))
    finally:
        await connection.close()


async def test_each_outcome_adds_one_attempt_and_purge_and_prune_remove_them(
    queue: Queue, queue_backend: Backend
) -> None:
    result = await queue.enqueue(hook="h", source="sekoia", dedupe_key="k", body=b"{}")
    [event] = await queue.claim_events(1, 30)
    jobs = [NewDelivery("r", "ok", "{}"), NewDelivery("r", "bad", "{}")]
    assert await queue.complete_event(event, jobs, routing='{"routes": []}')
    [bad] = await queue.claim_deliveries("bad", 1, 30)
    assert await queue.finish_delivery(
        bad,
        state="pending",
        error="HTTP 503",
        retry_in=0.0,
        attempt=AttemptNote("retry", "HTTP 503", 503, 1e12),
    )
    [bad] = await queue.claim_deliveries("bad", 1, 30)
    assert await queue.finish_delivery(bad, state="dead", error="HTTP 404: gone")
    # A stale lease records neither the outcome nor an attempt.
    assert not await queue.finish_delivery(bad, state="done", error=None)
    [ok] = await queue.claim_deliveries("ok", 1, 30)
    assert await queue.finish_delivery(ok, state="done", error=None)

    story = await queue.inspection().event_story(result.id)
    assert story is not None and story.routing == '{"routes": []}'
    histories = {d.sink: d.history for d in story.deliveries}
    assert [(a.attempt, a.outcome, a.status, a.detail) for a in histories["bad"]] == [
        (1, "retry", 503, "HTTP 503"),
        (2, "dead", None, "HTTP 404: gone"),
    ]
    assert histories["bad"][0].paused_until == 1e12
    assert histories["bad"][0].next_attempt_at is not None
    assert histories["bad"][1].next_attempt_at is None
    assert [(a.attempt, a.outcome) for a in histories["ok"]] == [(1, "delivered")]
    assert await attempt_rows(queue, queue_backend) == 3

    assert await queue.dead_letters().purge() == (1, 0)
    assert await attempt_rows(queue, queue_backend) == 1
    assert await queue.prune(-1.0) == 1
    assert await attempt_rows(queue, queue_backend) == 0
    assert await queue.inspection().event_story(result.id) is None
