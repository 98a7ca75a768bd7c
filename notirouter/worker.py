"""Routing workers: turn each stored event into durable delivery jobs.

Claim an event under a lease, parse it with its source, route/enrich/format it through the
:class:`~notirouter.pipeline.Pipeline`, then write its delivery jobs and mark it routed in one
transaction. If the process dies mid-way, the lease expires and another worker starts over;
``UNIQUE(event, route, sink)`` keeps that from creating duplicate jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

from pydantic import ValidationError

from notirouter.claiming import ClaimLoop, Slot
from notirouter.metrics import Metrics
from notirouter.pipeline import Pipeline, UnknownSourceError
from notirouter.queue.protocol import EVENTS_WAKE, QueueUnavailable, RoutingQueue
from notirouter.queue.records import NewDelivery, StoredEvent
from notirouter.retry import RetryPolicy

log = logging.getLogger("notirouter.worker")


class EventRouter(ClaimLoop[StoredEvent]):
    """Runs up to ``concurrency`` events through the pipeline at once."""

    label = "router"

    def __init__(
        self,
        pipeline: Pipeline,
        queue: RoutingQueue,
        policy: RetryPolicy,
        metrics: Metrics,
        *,
        concurrency: int,
        lease: float,
    ) -> None:
        super().__init__(queue.wakeup(EVENTS_WAKE), concurrency)
        self.pipeline = pipeline
        self.queue = queue
        self.policy = policy
        self.metrics = metrics
        self.lease = lease

    async def claim(self, limit: int) -> list[StoredEvent]:
        """Due events."""
        return await self.queue.claim_events(limit, self.lease)

    async def next_due(self) -> float | None:
        """When the next pending event falls due."""
        return await self.queue.next_event_due()

    async def handle(self, stored: StoredEvent, slot: Slot) -> None:
        """Route one event; on an unexpected error, schedule it again."""
        try:
            await self._route(stored, slot)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("event %s could not be routed", stored.id)
            # If even that fails, the lease expires and the event is routed again later.
            with contextlib.suppress(QueueUnavailable):
                await self._retry(stored, f"routing error: {type(exc).__name__}")

    async def _route(self, stored: StoredEvent, slot: Slot) -> None:
        try:
            payload = json.loads(stored.body)
            event = self.pipeline.parse(stored.source, payload)
        except (ValueError, ValidationError, UnknownSourceError) as exc:
            # The body was valid when accepted: the source changed. Keep retrying so a fix or
            # a reinstall can still deliver it; after max_age the event is marked failed.
            await self._retry(stored, f"cannot parse with source {stored.source!r}: {exc}")
            return
        routed = await self.pipeline.route(event)
        slot.release()  # enrichment is done; writing the jobs needs no slot
        jobs = [
            NewDelivery(route.name, sink, message.model_dump_json())
            for route, message in routed.messages
            for sink in route.sinks
        ]
        if await self.queue.complete_event(stored, jobs):
            self.metrics.events_routed.inc()
            matched = [route.name for route, _ in routed.messages] or ["none"]
            log.debug(
                "routed %s/%s event %s: routes %s, %d deliveries",
                event.type,
                event.action,
                stored.id,
                ",".join(matched),
                len(jobs),
            )

    async def _retry(self, stored: StoredEvent, error: str) -> None:
        now = time.time()
        delay = self.policy.delay(stored.attempts)
        dead = self.policy.gives_up(stored.received_at, now, delay)
        await self.queue.retry_event(stored, delay, error, dead=dead)
        if dead:
            log.error(
                "event %s could not be routed and is given up (%s); "
                "see 'notirouter dead list', replay with 'notirouter dead replay %s'",
                stored.id,
                error,
                stored.id,
            )
