"""Routing workers: turn each stored event into durable delivery jobs.

Claim an event under a lease, parse it with its source, route/enrich/format it through the
:class:`~notirouter.routing.pipeline.Pipeline`, then write its delivery jobs and mark it
routed in one transaction. If the process dies mid-way, the lease expires and another worker
starts over; ``UNIQUE(event, route, sink)`` keeps that from creating duplicate jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from notirouter.api.events import Event
from notirouter.api.message import Message
from notirouter.delivery.retry import RetryPolicy
from notirouter.ingest.payload import PayloadRefused, load_payload
from notirouter.metrics import Metrics
from notirouter.queue.claim_loop import ClaimLoop, Slot
from notirouter.queue.protocol import EVENTS_WAKE, QueueUnavailable, RoutingQueue
from notirouter.queue.records import ChangeMark, NewDelivery, NewGroupItem, StoredEvent
from notirouter.routing.pipeline import Pipeline, UnknownSourceError
from notirouter.routing.record import routing_record
from notirouter.throttled_log import ThrottledLog

log = logging.getLogger("notirouter.worker")
MAX_REASON_CHARS = 300


class Unroutable(Exception):
    """An event failed at ``stage`` (parse, route, serialise); the cause is ``__cause__``."""

    def __init__(self, stage: str, cause: Exception) -> None:
        super().__init__(f"cannot {stage}: {describe(cause)}")
        self.stage = stage


def describe(exc: BaseException) -> str:
    """One short line saying what went wrong (for the log and the failed event's record)."""
    text = " ".join(str(exc).split())
    if isinstance(exc, PayloadRefused):
        reason = text  # already says what is wrong with the body
    else:
        reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return reason if len(reason) <= MAX_REASON_CHARS else reason[: MAX_REASON_CHARS - 1] + "…"


def serialise(message: Message) -> str:
    """The message as stored, proven readable: a delivery job must not be dead on arrival."""
    stored = message.model_dump_json()
    Message.model_validate_json(stored)
    return stored


class EventRouter(ClaimLoop[StoredEvent]):
    """Runs up to ``concurrency`` events through the pipeline at once."""

    label = "router"
    lease: float

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
        self._tracebacks = ThrottledLog(log)

    async def claim(self, limit: int) -> list[StoredEvent]:
        """Due events."""
        return await self.queue.claim_events(limit, self.lease)

    async def renew(self, stored: StoredEvent) -> bool:
        """Keep an event still being enriched and routed ours."""
        return await self.queue.renew_event_lease(stored, self.lease)

    async def next_due(self) -> float | None:
        """When the next pending event falls due."""
        return await self.queue.next_event_due()

    async def handle(self, stored: StoredEvent, slot: Slot) -> None:
        """Route one event: write its jobs, or fail it at once if it cannot be routed.

        Parsing, routing, formatting and serialising are deterministic: an event that fails
        there fails the same way every time, so it becomes a failed event (logged, counted,
        in ``dead list``) at once instead of being retried for ``max_age``. Only a source that
        is not installed, and a queue that cannot record the outcome, are worth retrying.
        """
        try:
            event, jobs, items, matched, routing, change = await self._deliveries(stored)
        except asyncio.CancelledError:
            raise
        except UnknownSourceError as exc:
            # Reinstalling the plugin or restoring the hook's source delivers it.
            await self._retry_quietly(stored, str(exc))
            return
        except Unroutable as exc:
            await self._unroutable(stored, exc)
            return
        slot.release()  # enrichment is done; writing the jobs needs no slot
        try:
            done = await self.queue.complete_event(stored, jobs, items, routing, change)
        except asyncio.CancelledError:
            raise
        except QueueUnavailable as exc:
            # The queue itself said why, once, loudly; the event stays claimable after its lease.
            log.warning("event %s: its delivery jobs could not be written: %s", stored.id, exc)
            return
        except Exception as exc:
            log.exception("event %s: its delivery jobs could not be written", stored.id)
            await self._retry_quietly(stored, f"routing error: {type(exc).__name__}")
            return
        if done:
            self.metrics.events_routed.inc()
            log.debug(
                "routed %s/%s event %s: routes %s, %d deliveries, %d held in groups",
                event.type,
                event.action,
                stored.id,
                ",".join(matched) or "none",
                len(jobs),
                len(items),
                extra={
                    "event_id": stored.id,
                    "hook": stored.hook,
                    "routes": matched,
                    "outcome": "routed",
                    "deliveries": len(jobs),
                    "grouped": len(items),
                },
            )

    async def _deliveries(
        self, stored: StoredEvent
    ) -> tuple[Event, list[NewDelivery], list[NewGroupItem], list[str], str, ChangeMark | None]:
        """Parse, route, format and serialise: the jobs to write, the messages grouped routes
        hold (README "Storm control"), the routes that matched, and the decisions as stored
        with the event."""
        stage = "parse"
        try:
            event = self.pipeline.parse(stored.source, load_payload(stored.body))
            stage = "route"
            routed = await self.pipeline.route(event)
            stage = "serialise"
            jobs: list[NewDelivery] = []
            items: list[NewGroupItem] = []
            for route, message in routed.messages:
                message_json = serialise(message)
                if route.group is None:
                    jobs.extend(NewDelivery(route.name, sink, message_json) for sink in route.sinks)
                else:
                    key = route.group.key(routed.variables)
                    items.append(
                        route.group.item(route.name, route.sinks, message, message_json, key)
                    )
        except UnknownSourceError:
            raise
        except Exception as exc:
            raise Unroutable(stage, exc) from exc
        matched = [route.name for route, _ in routed.messages]
        change = None
        if routed.change_key is not None:
            change = ChangeMark(routed.change_key, routing_record(routed, already_notified=True))
        return event, jobs, items, matched, routing_record(routed), change

    async def _unroutable(self, stored: StoredEvent, exc: Unroutable) -> None:
        stage, cause, reason = exc.stage, exc.__cause__, str(exc)
        self.metrics.events_unroutable.labels(stage=stage).inc()
        # Every such event is logged; the traceback, which says where a formatter or a plugin
        # broke, once per stage and minute.
        log.error(
            "event %s %s; it failed at once, see 'notirouter dead show %s'",
            stored.id,
            reason,
            stored.id,
            exc_info=cause if self._tracebacks.admits(stage) else None,
            extra={
                "event_id": stored.id,
                "hook": stored.hook,
                "outcome": "unroutable",
                "stage": stage,
            },
        )
        # If that fails, the lease expires and the event is routed (and fails) again.
        with contextlib.suppress(QueueUnavailable):
            await self.queue.retry_event(stored, 0.0, reason, dead=True)

    async def _retry_quietly(self, stored: StoredEvent, error: str) -> None:
        # If even that fails, the lease expires and the event is routed again later.
        with contextlib.suppress(QueueUnavailable):
            await self._retry(stored, error)

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
                extra={"event_id": stored.id, "hook": stored.hook, "outcome": "dead"},
            )
