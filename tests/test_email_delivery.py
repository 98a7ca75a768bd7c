"""The email sink driven by the real queue and dispatcher: retries and dead letters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from notirouter.api.message import Message, Severity
from notirouter.api.sink import Sink
from notirouter.delivery.dispatcher import SinkDispatcher
from notirouter.delivery.retry import RetryPolicy
from notirouter.metrics import Metrics
from notirouter.queue.records import NewDelivery
from notirouter.queue.sqlite.dead_letters import DeadLetters
from notirouter.queue.sqlite.queue import SqliteQueue
from tests.smtp_server import SmtpServer

MESSAGE = Message(
    title="Suspicious login",
    severity=Severity.CRITICAL,
    thread_key="5696845f-9ecf-4431-9f0f-48ee0ee2eff1",
    route="urgent-alerts",
    event={
        "type": "alert",
        "action": "created",
        "attributes": {"uuid": "5696845f-9ecf-4431-9f0f-48ee0ee2eff1", "short_id": "ALabc"},
    },
)


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    """A plain SMTP server on loopback."""
    server = SmtpServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def queue(tmp_path: Path) -> AsyncIterator[SqliteQueue]:
    """A real SQLite queue in a temporary file."""
    store = SqliteQueue(tmp_path / "queue.db", synchronous="normal")
    await store.open()
    yield store
    await store.close()


async def deliver(queue: SqliteQueue, sink: Sink[Any]) -> dict[str, int]:
    """Queue one delivery of MESSAGE for ``sink``, run its dispatcher until it is settled."""
    await queue.enqueue(hook="sekoia", source="sekoia", dedupe_key="e1", body=b"{}")
    [event] = await queue.claim_events(1, 60.0)
    job = NewDelivery(route="urgent-alerts", sink=sink.name, message_json=MESSAGE.model_dump_json())
    assert await queue.complete_event(event, [job])
    # Short backoff and lease so the retry comes within a second, whichever wakes it first.
    policy = RetryPolicy(initial=0.05, maximum=0.1)
    dispatcher = SinkDispatcher(sink, queue, policy, Metrics(), lease=1.0)
    runner = asyncio.create_task(dispatcher.run())
    try:
        async with asyncio.timeout(15):
            while True:
                counts = await queue.counts()
                if counts.get("deliveries_done") or counts.get("deliveries_dead"):
                    return counts
                await asyncio.sleep(0.02)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await dispatcher.drain(1.0)


def email_sink(make_sink: Callable[..., Sink[Any]], smtp: SmtpServer) -> Sink[Any]:
    return make_sink(
        "email",
        name="oncall-mail",
        host="127.0.0.1",
        port=smtp.port,
        starttls=False,
        to=["oncall@example.com"],
        **{"from": "notirouter@example.com"},
    )


async def test_451_then_250_is_retried_and_delivered_once(
    make_sink: Callable[..., Sink[Any]], smtp: SmtpServer, queue: SqliteQueue
) -> None:
    smtp.data_replies = ["451 4.3.0 Temporary local problem", "250 2.0.0 OK queued"]
    counts = await deliver(queue, email_sink(make_sink, smtp))
    assert counts.get("deliveries_done") == 1
    assert smtp.data_attempts == 2
    assert len(smtp.received) == 1
    assert smtp.received[0].message()["Subject"] == "[CRITICAL] Suspicious login (ALabc)"


async def test_550_ends_in_a_dead_letter_with_the_server_reply(
    make_sink: Callable[..., Sink[Any]], smtp: SmtpServer, queue: SqliteQueue
) -> None:
    smtp.data_replies = ["550 5.7.1 Delivery not authorized, message refused"]
    counts = await deliver(queue, email_sink(make_sink, smtp))
    assert counts.get("deliveries_dead") == 1
    assert smtp.data_attempts == 1  # permanent: not retried
    assert smtp.received == []
    [letter] = await DeadLetters(queue).deliveries()
    assert letter.sink == "oncall-mail"
    assert "550 5.7.1 Delivery not authorized, message refused" in letter.last_error
