"""The gates' state in the queue (``notify_on`` values, throttle windows) on both backends.

Decided in the transaction that writes the event's deliveries: what the decision stores exists
only if the event's deliveries do, several processes decide one key one after the other, and
housekeeping forgets what expired, in small batches.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from notirouter.api.message import Message
from notirouter.queue.gates import (
    THROTTLE_KIND,
    Change,
    GatedMessage,
    NotifyOnCheck,
    Released,
    ThrottleCheck,
)
from notirouter.queue.protocol import Queue
from notirouter.queue.records import NewDelivery, NewGroupItem, StoredEvent
from notirouter.queue.sqlite import gates as sqlite_gates
from notirouter.queue.sqlite.queue import SqliteQueue
from tests.backends import Backend

MESSAGE = Message(title="alert").model_dump_json()


class Boom(Exception):
    pass


def gated(
    status: str | None,
    *,
    key: str = "alert-1",
    retention: float = 3600.0,
    throttle: ThrottleCheck | None = None,
    fail: bool = False,
) -> GatedMessage:
    def release(changes: tuple[Change, ...]) -> Released:
        if fail:
            raise Boom("the message could not be written")
        return Released(deliveries=(NewDelivery("r", "s", json.dumps([list(c) for c in changes])),))

    def fold(changes: tuple[Change, ...], group_key: str, wait: float) -> NewGroupItem:
        return NewGroupItem(THROTTLE_KIND, "r", group_key, ("s",), wait, 0.0, 50, MESSAGE, 0, None)

    check = NotifyOnCheck(key, (("alert.status.name", status),), retention)
    return GatedMessage("r", check, throttle, release, fold)


async def route_one(queue: Queue, n: int, gate: GatedMessage) -> tuple[StoredEvent, bool]:
    """Enqueue, claim and complete one event; whether it was routed."""
    await queue.enqueue(hook="h", source="sekoia", dedupe_key=f"k{n}", body=b"{}")
    [event] = await queue.claim_events(1, 30.0)
    return event, await queue.complete_event(event, [], [], '{"routes": []}', [gate])


async def delivered(queue: Queue, event: StoredEvent) -> list[str]:
    story = await queue.inspection().event_story(event.id)
    assert story is not None
    return [d.sink for d in story.deliveries]


async def test_a_decision_is_stored_only_with_the_deliveries_it_allows(
    queue_backend: Backend,
) -> None:
    queue = queue_backend.make()
    await queue.open()
    try:
        await queue.enqueue(hook="h", source="sekoia", dedupe_key="k0", body=b"{}")
        [stale] = await queue.claim_events(1, 0.0)
        [current] = await queue.claim_events(1, 30.0)
        # A lost lease decides nothing: the values are not stored.
        assert not await queue.complete_event(stale, [], [], None, [gated("Pending")])
        notified, _ = await queue.gate_state([gated("Pending")])
        assert notified == {("r", "alert-1"): None}
        # A failure while writing the message rolls the decision back with it.
        with pytest.raises(Exception, match="could not be written"):
            await queue.complete_event(current, [], [], None, [gated("Pending", fail=True)])
        assert (await queue.gate_state([gated("Pending")]))[0] == {("r", "alert-1"): None}
        assert await queue.complete_event(current, [], [], None, [gated("Pending")])
        assert await delivered(queue, current) == ["s"]
        notified, _ = await queue.gate_state([gated("Pending")])
        assert notified == {("r", "alert-1"): {"alert.status.name": "Pending"}}
    finally:
        await queue.close()


async def test_decisions_follow_the_values_last_notified(queue_backend: Backend) -> None:
    queue = queue_backend.make()
    await queue.open()
    try:
        first, _ = await route_one(queue, 1, gated("Pending"))
        same, _ = await route_one(queue, 2, gated("Pending"))
        unknown, _ = await route_one(queue, 3, gated(None))
        changed, _ = await route_one(queue, 4, gated("Closed"))
        other_key, _ = await route_one(queue, 5, gated("Closed", key="alert-2"))
        assert [await delivered(queue, e) for e in (first, same, unknown, changed, other_key)] == [
            ["s"],
            [],
            ["s"],  # unknown: notified (fail open)...
            ["s"],
            ["s"],
        ]
        # ...and the known value kept: the change is counted from Pending.
        jobs = {d.event_id: d.message_json for d in await queue.claim_deliveries("s", 10, 30.0)}
        assert json.loads(jobs[changed.id]) == [["alert.status.name", "Pending", "Closed"]]
        assert json.loads(jobs[unknown.id]) == []
        notified, _ = await queue.gate_state([gated("x"), gated("x", key="alert-2")])
        assert notified[("r", "alert-1")] == {"alert.status.name": "Closed"}
    finally:
        await queue.close()


async def test_expired_values_are_forgotten_and_pruned_in_batches(
    queue_backend: Backend,
) -> None:
    queue = queue_backend.make()
    await queue.open()
    try:
        window = ThrottleCheck("rule", max=1, per=0.05)
        for n in range(5):
            gate = gated("Pending", key=f"a{n}", retention=0.05, throttle=window)
            assert (await route_one(queue, n, gate))[1]
        kept = gated("Pending", key="kept", retention=3600.0)
        assert (await route_one(queue, 9, kept))[1]
        await asyncio.sleep(0.2)
        # Expired reads as never notified, whether pruned yet or not.
        assert (await queue.gate_state([gated("Pending", key="a0")]))[0] == {("r", "a0"): None}
        if isinstance(queue, SqliteQueue):
            assert await sqlite_gates.prune(queue, rows=2) == 5  # three batches
        else:
            assert await queue.prune_gates() == 5
        assert await queue.prune_gates() == 0
        notified, windows = await queue.gate_state([kept, gated("x", key="a1", throttle=window)])
        assert notified[("r", "kept")] == {"alert.status.name": "Pending"}
        assert windows == {("r", "rule"): None}  # the ended window went too
    finally:
        await queue.close()


async def test_processes_on_postgres_decide_one_key_one_after_the_other(
    postgres_backend: Backend,
) -> None:
    """Forty updates with the same values, routed at once by two processes: one notifies."""
    one, two = postgres_backend.make(), postgres_backend.make()
    await one.open()
    await two.open()
    try:
        for n in range(40):
            await one.enqueue(hook="h", source="sekoia", dedupe_key=f"k{n}", body=b"{}")
        events = await one.claim_events(40, 30.0)
        window = ThrottleCheck("rule", max=100, per=3600.0)
        results = await asyncio.gather(
            *(
                (one if n % 2 else two).complete_event(
                    event, [], [], None, [gated("Pending", throttle=window)]
                )
                for n, event in enumerate(events)
            )
        )
        assert all(results)
        sent = [await delivered(one, event) for event in events]
        assert sent.count(["s"]) == 1
        # Throttle counts serialised too: the one that notified was counted once, as 1.
        _, windows = await one.gate_state([gated("x", throttle=window)])
        found = windows[("r", "rule")]
        assert found is not None and found[2] == 1
    finally:
        await one.close()
        await two.close()
