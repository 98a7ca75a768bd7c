"""Everything a running notirouter holds, built from a validated config.

The same :class:`Runtime` serves ``serve`` (receiver and workers), ``route`` and ``send``
(pipeline and sinks, no workers) and the ``dead`` commands (queue only).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from notirouter.api.enricher import Enricher, EnricherContext
from notirouter.api.http import HttpClient
from notirouter.api.operations import OPERATIONAL_EVENT_TYPE
from notirouter.api.sink import Sink, SinkContext
from notirouter.api.source import Source
from notirouter.config.loader import LoadedConfig
from notirouter.delivery.conversations import Conversations
from notirouter.delivery.dispatcher import SinkDispatcher
from notirouter.delivery.flusher import GroupFlusher
from notirouter.delivery.interactions import InteractionWorker
from notirouter.delivery.retry import RetryPolicy
from notirouter.delivery.storm import StormWatch, storm_after, storm_setting
from notirouter.ingest.hooks import HookTable
from notirouter.ingest.reconcile import ChangeKeeping, QueueChangeFeed, process_holder
from notirouter.metrics import Metrics
from notirouter.operations.emitter import OperationsEmitter
from notirouter.operations.enricher_health import enricher_health
from notirouter.operations.events import OperationalSource
from notirouter.operations.heartbeat import Heartbeat
from notirouter.operations.process_state import (
    ProcessStatePublisher,
    options_redactor,
    safe_status,
)
from notirouter.operations.self_routing import self_routing_warnings
from notirouter.operations.sink_health import SinkHealth
from notirouter.queue.factory import queue_for
from notirouter.queue.protocol import Queue, QueueUnavailable, SinkGate
from notirouter.routing.handoff import ParsedEvents
from notirouter.routing.pipeline import Pipeline
from notirouter.routing.router import EventRouter
from notirouter.routing.silences import ActiveSilences

log = logging.getLogger("notirouter")
PRUNE_INTERVAL_SECONDS = 3600.0


class Runtime:
    """Plugins instantiated from the config, the queue, and the workers once started."""

    def __init__(self, config: LoadedConfig) -> None:
        self.config = config
        app = config.app
        self.http = HttpClient()
        self.metrics = Metrics()
        self.hooks = HookTable(app.hooks)
        self.sources: dict[str, Source] = {
            name: cls() for name, cls in config.types.sources.items()
        }
        # The core's own source: operational events are stored and routed like webhooks.
        operational = OperationalSource()
        self.sources[operational.type_name] = operational
        self.queue: Queue = queue_for(app.queue)
        # Shared by the routers a reload builds: one read of the silences a second per process.
        self.silences = ActiveSilences(self.queue.silences)
        self.operations = OperationsEmitter(
            self.queue, app.operations, routed=self._routes_operational_event
        )
        self.sink_health = SinkHealth(self.operations, failing_after=app.operations.failing_after)
        # Each sink and enricher has its own connection budget over the shared session: one
        # service that hangs holds only its own. A sink needs one per attempt in flight; an
        # enricher two per event being routed (the Sekoia enricher fetches a comment and its
        # alert at once).
        enricher_budget = 2 * app.delivery.route_workers
        self.enrichers: dict[str, Enricher[Any]] = {
            name: config.types.enrichers[options.type](
                name,
                options,
                EnricherContext(
                    name,
                    self.http.with_budget(enricher_budget),
                    enricher_health(self.operations, name),
                ),
            )
            for name, options in config.enricher_options.items()
        }
        self.sinks: dict[str, Sink[Any]] = {
            name: config.types.sinks[options.type](
                name, options, SinkContext(name, self.http.with_budget(options.concurrency))
            )
            for name, options in config.sink_options.items()
        }
        self.pipeline = Pipeline(
            manager=config.manager,
            sources=self.sources,
            enrichers=self.enrichers,
            routes=config.routes,
            storm_settings={
                name: storm_setting(sink, app.storm) for name, sink in self.sinks.items()
            },
        )
        self.policy = RetryPolicy(
            initial=app.delivery.backoff_initial,
            maximum=app.delivery.backoff_max,
            max_age=app.delivery.max_age,
        )
        self._tasks: list[asyncio.Task[None]] = []
        # Each enricher's reconciliation poller (most return at once: nothing to reconcile).
        self.reconcilers: list[asyncio.Task[None]] = []
        self.change_keeping = ChangeKeeping()
        self.lease_holder = process_holder()
        self._heartbeat: asyncio.Task[None] | None = None
        # Its own client: the heartbeat also runs without workers (serve --no-workers).
        self._heartbeat_http = HttpClient(max_connections=2)
        self._router: EventRouter | None = None
        # Events the receiver parsed, for the routers (only when this process routes).
        self.parsed: ParsedEvents | None = None
        self._dispatchers: list[SinkDispatcher] = []
        self._interactions: InteractionWorker | None = None
        # Set when the drain starts: /readyz and new webhooks answer 503 from then on.
        self.draining = False
        self._drained = False
        # Loops and parts a reload replaced, still finishing their work (notirouter.reload).
        self.retiring: list[Any] = []
        self.retirements: set[asyncio.Task[None]] = set()
        self.workers = False
        # What `notirouter status` shows of this process's memory, written to the queue.
        self.status_publisher = ProcessStatePublisher(
            self.queue.process_states(), app.server.status_interval, self.memory_state
        )
        self._status_task: asyncio.Task[None] | None = None

    async def open_plugins(self) -> None:
        """Open the HTTP client and let sinks and enrichers prepare."""
        await self.http.start()
        for enricher in self.enrichers.values():
            await enricher.start()
        for sink in self.sinks.values():
            await sink.start()

    async def close_plugins(self) -> None:
        """Let sinks and enrichers release resources, then close the HTTP client."""
        closers = [(s.name, s.aclose) for s in self.sinks.values()]
        closers += [(e.name, e.aclose) for e in self.enrichers.values()]
        for name, aclose in closers:
            try:
                await aclose()
            except Exception:
                log.exception("error while closing %s", name)
        await self.http.aclose()

    async def start(self, *, init_queue: bool = False, workers: bool = True) -> None:
        """Open everything and start the routing workers and one dispatcher per sink.

        ``init_queue`` (``serve --init``): create an empty queue even where one was lost.
        Without ``workers`` only the queue is opened (``serve --no-workers``: receive only).
        """
        await self.queue.open(init=init_queue)
        heartbeat = self.config.app.heartbeat
        if heartbeat is not None:
            beat = Heartbeat(heartbeat, self._heartbeat_http, self.readiness)
            self._heartbeat = asyncio.create_task(beat.run(), name="notirouter heartbeat")
            self._heartbeat.add_done_callback(self._crashed)
        if not workers:
            self._start_status()
            return
        self.workers = True
        self.operations.active = True
        for warning in self_routing_warnings(self.pipeline.routes, self.sinks):
            log.warning("config: %s", warning)  # as `notirouter check` says it
        await self.open_plugins()
        delivery = self.config.app.delivery
        self.parsed = ParsedEvents()
        self._router = EventRouter(
            self.pipeline,
            self.queue,
            self.policy,
            self.metrics,
            concurrency=delivery.route_workers,
            lease=delivery.lease,
            silences=self.silences,
            parsed=self.parsed,
        )
        self._dispatchers = [
            self.dispatcher_for(
                sink, self.queue.sink_gate(sink.name, sink.rate_limit, sink.options.burst)
            )
            for sink in self.sinks.values()
        ]
        self._spawn(self._router.run(), "router")
        for dispatcher in self._dispatchers:
            self._spawn(dispatcher.run(), f"sink {dispatcher.sink.name}")
        # Always: groups held by a route since removed from the config still go out.
        self._spawn(GroupFlusher(self.queue).run(), "group flusher")
        # Always too: clicks queued before a reload took the buttons away are still answered.
        self._interactions = InteractionWorker(self, self.policy, delivery.lease)
        self._spawn(self._interactions.run(), "interactions")
        self._spawn(self._housekeeping_forever(), "housekeeping")
        self.start_reconcilers()
        self._start_status()

    def _start_status(self) -> None:
        self._status_task = asyncio.create_task(
            self.status_publisher.run(), name="notirouter status"
        )
        self._status_task.add_done_callback(self._crashed)

    def memory_state(self) -> dict[str, Any]:
        """What this process holds in memory, as ``notirouter status`` shows it per process.

        Per sink: attempts in flight, this process's ``Retry-After`` pause, its health as the
        operational events see it, and the sink's own ``status()``; per enricher, its own
        ``status()`` (the Sekoia.io enricher: cache and circuit breaker).
        """
        now = time.time()
        sinks: dict[str, Any] = {}
        for dispatcher in self._dispatchers:
            sink = dispatcher.sink
            paused = dispatcher.paused_until
            sinks[sink.name] = {
                "in_flight": len(dispatcher.tasks),
                "concurrency": dispatcher.concurrency,
                "rate_limit": sink.rate_limit,
                "paused_until": paused if paused > now else None,
                **self.sink_health.state(sink.name),
                # Storm control's in-memory state per sink, if it keeps any, belongs here too.
                "plugin": safe_status(f"sink {sink.name}", sink.status, dispatcher.redact),
            }
        enrichers: dict[str, Any] = {}
        if self.workers:  # without workers, no enricher is opened or used
            for name, enricher in self.enrichers.items():
                redact = options_redactor(enricher.options)
                enrichers[name] = {
                    "plugin": safe_status(f"enricher {name}", enricher.status, redact)
                }
        return {
            "workers": self.workers,
            "draining": self.draining,
            "sinks": sinks,
            "enrichers": enrichers,
        }

    def start_reconcilers(self) -> None:
        """Run each enricher's reconciliation (at start, and for a reload's new enrichers)."""
        for enricher in self.enrichers.values():
            feed = QueueChangeFeed(
                enricher.name,
                self.queue.changes(),
                self.metrics,
                self.operations,
                self.change_keeping,
                self.lease_holder,
            )
            task = asyncio.create_task(
                enricher.reconcile(feed), name=f"notirouter reconcile {enricher.name}"
            )
            task.add_done_callback(self._crashed)
            self.reconcilers.append(task)

    async def stop_reconcilers(self) -> None:
        """Cancel the running reconciliations and wait until they released their leases."""
        tasks, self.reconcilers = self.reconcilers, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, coroutine: Any, label: str) -> None:
        task = asyncio.create_task(coroutine, name=f"notirouter {label}")
        task.add_done_callback(self._crashed)
        self._tasks.append(task)

    def _crashed(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s stopped", task.get_name(), exc_info=task.exception())

    @property
    def healthy(self) -> bool:
        """Whether every worker loop is still running (for ``/readyz``)."""
        return all(not task.done() for task in self._tasks)

    def _routes_operational_event(self, action: str) -> bool:
        return bool(self.pipeline.routes.candidates(OPERATIONAL_EVENT_TYPE, action))

    async def readiness(self) -> str | None:
        """``None`` when ready (``/readyz`` answers 200 and the heartbeat pings), else why not."""
        if self.draining:
            return "draining"
        if not self.healthy:
            return "a worker loop stopped"
        return await self.queue.readiness()

    async def _housekeeping_forever(self) -> None:
        """Every hour: forget old finished work; dead-letter jobs for unconfigured sinks."""
        while True:
            try:
                await self.housekeep()
            except QueueUnavailable as exc:
                log.error("queue housekeeping failed: %s", exc)  # the cause, not a traceback
            except Exception:
                log.exception("queue housekeeping failed")
            await asyncio.sleep(PRUNE_INTERVAL_SECONDS)

    def dispatcher_for(self, sink: Sink[Any], gate: SinkGate) -> SinkDispatcher:
        """The dispatcher of one sink, as start and a reload build it (with the current config:
        its retry policy, lease, operational events and conversations)."""
        return SinkDispatcher(
            sink,
            self.queue,
            self.policy,
            self.metrics,
            lease=self.config.app.delivery.lease,
            gate=gate,
            health=self.sink_health,
            conversations=Conversations(
                self.queue.message_refs(), self.config.app.queue.conversation_retention
            ),
            storm=self._storm_watch(sink),
        )

    def _storm_watch(self, sink: Sink[Any]) -> StormWatch | None:
        after = storm_after(sink, self.config.app.storm)
        if after is None:
            return None
        return StormWatch(sink, self.queue, after, self.metrics, self.operations)

    async def housekeep(self) -> None:
        """Dead-letter jobs of unconfigured sinks; prune what finished (and silences that
        ended) ``queue.retention`` ago, and conversation references unused for
        ``queue.conversation_retention``."""
        for sink, count in (await self.queue.bury_orphans(self.sinks)).items():
            log.warning(
                "%d pending deliveries for sink %s, which is not configured, are now "
                "dead letters (replay them once the sink is back)",
                count,
                sink,
            )
        pruned = await self.queue.prune(self.config.app.queue.retention)
        if pruned:
            log.info("pruned %d finished events", pruned)
        silences = await self.queue.silences().prune(self.config.app.queue.retention)
        if silences:
            log.info("forgot %d silences that ended over queue.retention ago", silences)
        if await self.queue.changes().prune(self.change_keeping.seconds):
            log.debug("forgot change keys older than %gs", self.change_keeping.seconds)
        forgotten = await self.queue.message_refs().prune(
            self.config.app.queue.conversation_retention
        )
        if forgotten:
            log.info("forgot %d expired conversation references", forgotten)
        # Each notify_on key carries its own retention (expires_at), so no setting is needed.
        expired = await self.queue.prune_gates()
        if expired:
            log.info("forgot the notified values of %d notify_on keys", expired)
        await self.queue.interactions().prune(self.config.app.queue.retention)

    async def drain(self) -> None:
        """Stop claiming, and let the work in flight finish within ``server.shutdown_grace``.

        From the first line on, ``/readyz`` and new webhooks answer 503 (see ``draining``).
        Each attempt that finishes records its outcome; one still running after the grace is
        cancelled and, unrecorded, is attempted again after its lease (at least once).
        """
        self.draining = True
        if self._drained:
            return
        self._drained = True
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        await self.stop_reconcilers()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        grace = self.config.app.server.shutdown_grace
        loops: list[SinkDispatcher | EventRouter | InteractionWorker] = [
            *self._dispatchers,
            *self.retiring,
        ]
        if self._router is not None:
            loops.append(self._router)
        if self._interactions is not None:
            loops.append(self._interactions)
        in_flight = sum(len(loop.tasks) for loop in loops)
        if in_flight:
            log.info("waiting up to %gs for %d attempts in flight", grace, in_flight)
        await asyncio.gather(*(loop.drain(grace) for loop in loops), return_exceptions=True)

    async def stop(self) -> None:
        """Drain (if not done yet), then close the plugins and the queue."""
        await self.drain()
        await asyncio.gather(*self.retirements, return_exceptions=True)
        self._tasks.clear()
        if self._heartbeat is not None:
            await asyncio.gather(self._heartbeat, return_exceptions=True)
            await self._heartbeat_http.aclose()
        await self.operations.flush()  # what the last attempts reported, before the queue closes
        if self._status_task is not None:
            self._status_task.cancel()
            await asyncio.gather(self._status_task, return_exceptions=True)
            await self.status_publisher.withdraw()
        if self._router is not None:  # the plugins were opened with the workers
            await self.close_plugins()
        await self.queue.close()
