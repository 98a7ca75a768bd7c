"""Chat actions as durable jobs on every backend: a replayed signature stores nothing, a claim
is leased, a retry comes back, a finished click keeps its result, a confirmation is two-step."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from notirouter.queue.protocol import Queue
from tests.backends import Backend


@pytest.fixture
async def queue(queue_backend: Backend) -> AsyncIterator[Queue]:
    q = queue_backend.make()
    await q.open()
    yield q
    await q.close()


async def test_a_remembered_signature_refuses_the_replay_atomically(queue: Queue) -> None:
    store = queue.interactions()
    until = time.time() + 300
    first = await asyncio.gather(
        *(store.enqueue("chat", '{"n": 1}', mark="v0=abc", until=until) for _ in range(5))
    )
    assert sorted(first) == [False, False, False, False, True]
    assert await store.enqueue("chat", '{"n": 2}', mark="v0=other", until=until)
    assert [r[1:3] for r in await store.results()] == [("chat", "pending"), ("chat", "pending")]


async def test_an_expired_mark_is_pruned_and_no_longer_refuses(queue: Queue) -> None:
    store = queue.interactions()
    assert await store.enqueue("chat", "{}", mark="v0=old", until=time.time() - 1)
    # Past its window the mark means nothing: the request itself is refused as stale upstream.
    assert await store.enqueue("chat", "{}", mark="v0=old", until=time.time() + 300)
    await store.prune(older_than=3600)
    assert len(await store.results()) == 2


async def test_claim_lease_retry_and_result(queue: Queue) -> None:
    store = queue.interactions()
    await store.enqueue("chat", '{"click": 1}', mark=None, until=0)
    [item] = await store.claim(10, lease_seconds=60)
    assert item.payload == '{"click": 1}' and item.attempts == 1
    assert await store.claim(10, lease_seconds=60) == []  # leased
    assert await store.finish(item, state="pending", result='{"try": 1}', retry_in=0)
    [again] = await store.claim(10, lease_seconds=60)
    assert again.attempts == 2 and again.result == '{"try": 1}'
    assert not await store.finish(item, state="done", result="{}")  # its lease was taken over
    assert await store.finish(again, state="done", result='{"ok": true}')
    assert await store.results() == [(item.id, "chat", "done", '{"ok": true}')]
    assert await store.next_due() is None
    assert await store.prune(older_than=3600) == 0  # finished just now: kept
    assert await store.prune(older_than=0) == 1


async def test_a_confirmation_is_armed_then_taken(queue: Queue) -> None:
    store = queue.interactions()
    until = time.time() + 120
    assert not await store.toggle_mark("confirm:chat:a:u", until)
    assert await store.toggle_mark("confirm:chat:a:u", until)
    assert not await store.toggle_mark("confirm:chat:a:u", until)  # taken: armed anew
    assert not await store.toggle_mark("confirm:chat:a:other", time.time() - 1)
    assert not await store.toggle_mark("confirm:chat:a:other", until)  # expired: not confirmed
