"""A claim's lease expires only when its worker is gone: a live one renews it while it works,
so an attempt (or a routing) that outlasts the lease on a busy machine is not done twice."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from notirouter.api.http import HttpClient
from notirouter.api.message import Message
from notirouter.api.sink import SendResult, Sink, SinkContext, SinkOptions
from notirouter.delivery.dispatcher import SinkDispatcher
from notirouter.delivery.retry import RetryPolicy
from notirouter.metrics import Metrics
from notirouter.queue.protocol import Queue
from notirouter.queue.records import NewDelivery, StoredDelivery
from tests.backends import Backend
from tests.commands import wait_until

MESSAGE = json.dumps({"title": "held"})


class HeldSink(Sink[SinkOptions]):
    """A sink whose service takes as long as the test says (a slow chat API, say)."""

    type_name = "held"

    def __init__(self) -> None:
        super().__init__(
            "held", SinkOptions(type="held", timeout=120), SinkContext("held", HttpClient())
        )
        self.answer = asyncio.Event()
        self.sent = 0

    def render(self, message: Message) -> Any:
        return {"title": message.title}

    async def send(self, message: Message) -> SendResult:
        self.sent += 1
        await self.answer.wait()
        return SendResult.delivered("ok")


async def one_delivery(queue: Queue) -> str:
    await queue.enqueue(hook="h", source="s", dedupe_key="k1", body=b"{}")
    (stored,) = await queue.claim_events(1, 30)
    assert await queue.complete_event(stored, [NewDelivery("r", "held", MESSAGE)])
    return stored.id


async def lease_end(queue: Queue, event_id: str) -> tuple[str, float]:
    story = await queue.inspection().event_story(event_id)
    assert story is not None
    [delivery] = story.deliveries
    return delivery.state, delivery.next_attempt_at


async def test_a_live_dispatcher_keeps_a_delivery_past_its_lease(queue_backend: Backend) -> None:
    queue = queue_backend.make()
    # Another worker on the same queue (on SQLite, the same file as another claim loop would).
    rival = queue_backend.make() if queue_backend.name == "postgres" else queue
    await queue.open()
    if rival is not queue:
        await rival.open()
    sink = HeldSink()
    dispatcher = SinkDispatcher(sink, queue, RetryPolicy(), Metrics(), lease=1.0)
    runner = asyncio.create_task(dispatcher.run())
    try:
        event_id = await one_delivery(queue)
        await wait_until(lambda: asyncio.sleep(0, sink.sent), lambda n: n == 1, what="sent")
        _, first_end = await lease_end(queue, event_id)
        # The attempt goes on past the lease it was claimed with, which was renewed meanwhile.
        await wait_until(
            lambda: lease_end(queue, event_id),
            lambda seen: seen[1] > first_end and time.time() > first_end,
            what="the lease renewed and its first end passed",
        )
        assert await rival.claim_deliveries("held", 10, 1.0) == []
        sink.answer.set()
        await wait_until(
            lambda: lease_end(queue, event_id),
            lambda seen: seen[0] == "done",
            what="the delivery recorded",
        )
        assert sink.sent == 1
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await dispatcher.drain(5)
        await queue.close()
        if rival is not queue:
            await rival.close()


async def test_a_recorded_outcome_ends_the_lease(queue_backend: Backend) -> None:
    queue = queue_backend.make()
    await queue.open()
    try:
        await queue.enqueue(hook="h", source="s", dedupe_key="k1", body=b"{}")
        (event,) = await queue.claim_events(1, 30)
        assert await queue.renew_event_lease(event, 30)
        await queue.retry_event(event, 0.05, "enricher down", dead=False)
        # A renewal that comes after the outcome changes nothing: the retry stays due soon.
        assert not await queue.renew_event_lease(event, 3600)
        (event,) = await wait_until(
            lambda: queue.claim_events(1, 30), lambda claimed: bool(claimed), what="claimed"
        )
        assert await queue.complete_event(event, [NewDelivery("r", "held", MESSAGE)])
        assert not await queue.renew_event_lease(event, 3600)

        (delivery,) = await queue.claim_deliveries("held", 1, 30)
        assert await queue.renew_delivery_lease(delivery, 30)
        assert await queue.finish_delivery(delivery, state="pending", error="x", retry_in=0.05)
        assert not await queue.renew_delivery_lease(delivery, 3600)
        _, due = await lease_end(queue, event.id)
        assert due < time.time() + 60
        claimed: list[StoredDelivery] = await wait_until(
            lambda: queue.claim_deliveries("held", 1, 30),
            lambda claimed: bool(claimed),
            what="the retry claimed",
        )
        # Another claim is another lease: the old claim's token renews nothing.
        assert not await queue.renew_delivery_lease(delivery, 3600)
        assert await queue.renew_delivery_lease(claimed[0], 30)
    finally:
        await queue.close()
