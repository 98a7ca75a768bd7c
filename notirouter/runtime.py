"""Everything a running notirouter holds, built from a validated config.

The same :class:`Runtime` serves ``serve`` (receiver and workers), ``route`` and ``send``
(pipeline and sinks, no workers) and the ``dead`` commands (queue only).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from notirouter.api.enricher import Enricher, EnricherContext
from notirouter.api.http import HttpClient
from notirouter.api.sink import Sink, SinkContext
from notirouter.api.source import Source
from notirouter.config.loader import LoadedConfig
from notirouter.delivery.conversations import Conversations
from notirouter.delivery.dispatcher import SinkDispatcher
from notirouter.delivery.retry import RetryPolicy
from notirouter.ingest.hooks import HookTable
from notirouter.metrics import Metrics
from notirouter.queue.factory import queue_for
from notirouter.queue.protocol import Queue, QueueUnavailable
from notirouter.routing.pipeline import Pipeline
from notirouter.routing.router import EventRouter

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
        # Each sink and enricher has its own connection budget over the shared session: one
        # service that hangs holds only its own. A sink needs one per attempt in flight; an
        # enricher two per event being routed (the Sekoia enricher fetches a comment and its
        # alert at once).
        enricher_budget = 2 * app.delivery.route_workers
        self.enrichers: dict[str, Enricher[Any]] = {
            name: config.types.enrichers[options.type](
                name, options, EnricherContext(name, self.http.with_budget(enricher_budget))
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
        )
        self.queue: Queue = queue_for(app.queue)
        self.policy = RetryPolicy(
            initial=app.delivery.backoff_initial,
            maximum=app.delivery.backoff_max,
            max_age=app.delivery.max_age,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._router: EventRouter | None = None
        self._dispatchers: list[SinkDispatcher] = []
        # Set when the drain starts: /readyz and new webhooks answer 503 from then on.
        self.draining = False
        self._drained = False

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
        if not workers:
            return
        await self.open_plugins()
        delivery = self.config.app.delivery
        self._router = EventRouter(
            self.pipeline,
            self.queue,
            self.policy,
            self.metrics,
            concurrency=delivery.route_workers,
            lease=delivery.lease,
        )
        conversations = Conversations(
            self.queue.message_refs(), self.config.app.queue.conversation_retention
        )
        self._dispatchers = [
            SinkDispatcher(
                sink,
                self.queue,
                self.policy,
                self.metrics,
                lease=delivery.lease,
                gate=self.queue.sink_gate(sink.name, sink.rate_limit, sink.options.burst),
                conversations=conversations,
            )
            for sink in self.sinks.values()
        ]
        self._spawn(self._router.run(), "router")
        for dispatcher in self._dispatchers:
            self._spawn(dispatcher.run(), f"sink {dispatcher.sink.name}")
        self._spawn(self._housekeeping_forever(), "housekeeping")

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

    async def _housekeeping_forever(self) -> None:
        """Every hour: forget old finished work; dead-letter jobs for unconfigured sinks."""
        window = max(self.config.app.queue.dedupe_window, self.config.app.delivery.max_age)
        while True:
            try:
                for sink, count in (await self.queue.bury_orphans(self.sinks)).items():
                    log.warning(
                        "%d pending deliveries for sink %s, which is not configured, are now "
                        "dead letters (replay them once the sink is back)",
                        count,
                        sink,
                    )
                pruned = await self.queue.prune(window)
                if pruned:
                    log.info("pruned %d finished events", pruned)
                retention = self.config.app.queue.conversation_retention
                forgotten = await self.queue.message_refs().prune(retention)
                if forgotten:
                    log.info("forgot %d expired conversation references", forgotten)
            except QueueUnavailable as exc:
                log.error("queue housekeeping failed: %s", exc)  # the cause, not a traceback
            except Exception:
                log.exception("queue housekeeping failed")
            await asyncio.sleep(PRUNE_INTERVAL_SECONDS)

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
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        grace = self.config.app.server.shutdown_grace
        loops: list[SinkDispatcher | EventRouter] = list(self._dispatchers)
        if self._router is not None:
            loops.append(self._router)
        in_flight = sum(len(loop.tasks) for loop in loops)
        if in_flight:
            log.info("waiting up to %gs for %d attempts in flight", grace, in_flight)
        await asyncio.gather(*(loop.drain(grace) for loop in loops), return_exceptions=True)

    async def stop(self) -> None:
        """Drain (if not done yet), then close the plugins and the queue."""
        await self.drain()
        self._tasks.clear()
        if self._router is not None:  # the plugins were opened with the workers
            await self.close_plugins()
        await self.queue.close()
