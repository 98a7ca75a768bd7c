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

from notirouter.metrics import Metrics
from notirouter.pipeline import Pipeline, UnknownSourceError
from notirouter.queue.records import NewDelivery, StoredEvent
from notirouter.queue.sqlite import EVENTS_WAKE, SqliteQueue
from notirouter.queue.writer import QueueUnavailable
from notirouter.retry import RetryPolicy

log = logging.getLogger("notirouter.worker")
IDLE_RECHECK_SECONDS = 5.0
QUEUE_ERROR_PAUSE = 1.0


class EventRouter:
    """Runs up to ``concurrency`` events through the pipeline at once."""

    def __init__(
        self,
        pipeline: Pipeline,
        queue: SqliteQueue,
        policy: RetryPolicy,
        metrics: Metrics,
        *,
        concurrency: int,
        lease: float,
    ) -> None:
        self.pipeline = pipeline
        self.queue = queue
        self.policy = policy
        self.metrics = metrics
        self.concurrency = concurrency
        self.lease = lease
        self.slots = asyncio.Semaphore(concurrency)
        self.tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Claim events whenever a slot is free; sleep until a commit wakes us or work is due."""
        wakeup = self.queue.wakeup(EVENTS_WAKE)
        while True:
            await self.slots.acquire()
            free = 1
            while free < self.concurrency and not self.slots.locked():
                await self.slots.acquire()
                free += 1
            wakeup.clear()
            try:
                batch = await self.queue.claim_events(free, self.lease)
            except QueueUnavailable as exc:
                for _ in range(free):
                    self.slots.release()
                log.error("cannot claim events (%s); trying again in %gs", exc, QUEUE_ERROR_PAUSE)
                await asyncio.sleep(QUEUE_ERROR_PAUSE)
                continue
            for _ in range(free - len(batch)):
                self.slots.release()
            for event in batch:
                task = asyncio.create_task(self._process(event))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            if not batch:
                try:
                    due = await self.queue.next_event_due()
                except QueueUnavailable:
                    due = None
                timeout = IDLE_RECHECK_SECONDS if due is None else due - time.time()
                timeout = max(0.0, min(timeout, IDLE_RECHECK_SECONDS))
                if timeout <= 0:
                    await asyncio.sleep(0.01)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wakeup.wait(), timeout)

    async def _process(self, stored: StoredEvent) -> None:
        try:
            await self._route(stored)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("event %s could not be routed", stored.id)
            # If even that fails, the lease expires and the event is routed again later.
            with contextlib.suppress(QueueUnavailable):
                await self._retry(stored, f"routing error: {type(exc).__name__}")
        finally:
            self.slots.release()

    async def _route(self, stored: StoredEvent) -> None:
        try:
            payload = json.loads(stored.body)
            event = self.pipeline.parse(stored.source, payload)
        except (ValueError, ValidationError, UnknownSourceError) as exc:
            # The body was valid when accepted: the source changed. Keep retrying so a fix or
            # a reinstall can still deliver it; after max_age the event is marked failed.
            await self._retry(stored, f"cannot parse with source {stored.source!r}: {exc}")
            return
        routed = await self.pipeline.route(event)
        jobs = [
            NewDelivery(route.name, sink, message.model_dump_json())
            for route, message in routed.messages
            for sink in route.sinks
        ]
        if await self.queue.complete_event(stored, jobs):
            self.metrics.events_routed.inc()
            matched = [route.name for route, _ in routed.messages] or ["none"]
            log.info(
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

    async def drain(self, grace: float) -> None:
        """Let events in progress finish for up to ``grace`` seconds, then cancel the rest."""
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=grace)
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
