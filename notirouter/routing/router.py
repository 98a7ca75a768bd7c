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
from typing import Any

from notirouter.api.events import Event
from notirouter.api.message import Message
from notirouter.delivery.retry import RetryPolicy
from notirouter.ingest.payload import PayloadRefused, load_payload
from notirouter.metrics import Metrics
from notirouter.queue.claim_loop import ClaimLoop, Slot
from notirouter.queue.gates import GatedMessage
from notirouter.queue.protocol import EVENTS_WAKE, QueueUnavailable, RoutingQueue
from notirouter.queue.records import ChangeMark, NewDelivery, NewGroupItem, StoredEvent
from notirouter.routing.gating import Hold, gated_message, keyless_record, release, serialise
from notirouter.routing.handoff import ParsedEvents
from notirouter.routing.holding import dispose
from notirouter.routing.pipeline import Pipeline, UnknownSourceError
from notirouter.routing.quiet_hours import DEFAULT_MAX_ITEMS, WindowDecision, window_item
from notirouter.routing.record import routing_record
from notirouter.routing.silences import ActiveSilences
from notirouter.routing.table import Route
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
        silences: ActiveSilences | None = None,
        parsed: ParsedEvents | None = None,
    ) -> None:
        super().__init__(queue.wakeup(EVENTS_WAKE), concurrency)
        self.parsed = parsed  # events this process's receiver parsed already
        self.pipeline = pipeline
        self.silences = silences or ActiveSilences(None)
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
            event, jobs, items, gated, matched, routing, decided, change = await self._deliveries(
                stored
            )
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
            done = await self.queue.complete_event(
                stored, jobs, items, routing, gated=gated, change=change
            )
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
            self._count_holds(decided)
            log.debug(
                "routed %s/%s event %s: routes %s, %d deliveries, %d held in groups, %d gated",
                event.type,
                event.action,
                stored.id,
                ",".join(matched) or "none",
                len(jobs),
                len(items),
                len(gated),
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
    ) -> tuple[
        Event,
        list[NewDelivery],
        list[NewGroupItem],
        list[GatedMessage],
        list[str],
        str | None,
        dict[str, dict[str, Any]],
        ChangeMark | None,
    ]:
        """Parse, route, format and serialise: the jobs to write, the messages grouped routes
        hold and those the queue decides on (``notify_on``, ``throttle``; README "Storm
        control"), the routes that matched, the decisions as stored with the event, and per
        route the silence or window that applied."""
        stage = "parse"
        try:
            event = self._parsed(stored) or self.pipeline.parse(
                stored.source, load_payload(stored.body)
            )
            stage = "route"
            routed = await self.pipeline.route(event)
        except UnknownSourceError:
            raise
        except Exception as exc:
            raise Unroutable(stage, exc) from exc
        await self.silences.refresh()  # never raises: the last silences read stay in force
        try:
            now = time.time()
            silence = self.silences.find(routed.variables, now) if routed.messages else None
            jobs: list[NewDelivery] = []
            items: list[NewGroupItem] = []
            gated: list[GatedMessage] = []
            keyless: dict[str, dict[str, Any]] = {}
            decided: dict[str, dict[str, Any]] = {}
            for route, message in routed.messages:
                stage = "route"
                disposition = dispose(route, routed.variables, silence, now)
                decided[route.name] = disposition.record()
                stage = "serialise"
                if disposition.silence is not None:
                    continue  # recorded with the event (trace says by which silence), not sent
                message_json = serialise(message)
                hold: Hold | None = None
                if disposition.held:
                    hold = _window_hold(route, disposition.window, now)
                key = routed.group_keys.get(route.name)
                gate = gated_message(route, message, message_json, routed.variables, hold, key)
                if route.notify_on is not None or route.throttle is not None:
                    keyless[route.name] = keyless_record(route, gate)
                if gate is not None:
                    gated.append(gate)
                    continue
                released = release(route, message, message_json, routed.variables, (), hold, key)
                jobs.extend(released.deliveries)
                items.extend(released.items)
        except Exception as exc:
            raise Unroutable(stage, exc) from exc
        matched = [route.name for route, _ in routed.messages]
        for name, entry in keyless.items():  # gates whose key rendered empty let it through
            decided[name].update(entry)
        record = routing_record(routed, decided)
        change = None
        if routed.change_key is not None:
            change = ChangeMark(
                routed.change_key, routing_record(routed, decided, already_notified=True)
            )
        return event, jobs, items, gated, matched, record, decided, change

    def _count_holds(self, decided: dict[str, dict[str, Any]]) -> None:
        """Count what silences and windows kept back, once the event's routing is committed."""
        for route, entry in decided.items():
            if "silence" in entry:
                self.metrics.silenced.labels(route=route).inc()
            elif entry.get("window", {}).get("held"):
                self.metrics.held.labels(route=route).inc()

    def _parsed(self, stored: StoredEvent) -> Event | None:
        if self.parsed is None:
            return None
        return self.parsed.take(stored.id, self.pipeline.sources.get(stored.source))

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


def _window_hold(route: Route, window: WindowDecision | None, now: float) -> Hold:
    """The item a message held by the route's window becomes (README "Time windows")."""
    assert window is not None
    max_items = route.group.max_items if route.group else DEFAULT_MAX_ITEMS

    def hold(message: Message, message_json: str) -> NewGroupItem:
        return window_item(route.name, route.sinks, message, message_json, window, now, max_items)

    return hold
