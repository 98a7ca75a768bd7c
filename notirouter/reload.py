"""Hot reload: on SIGHUP, read the config again and swap the running parts for new ones.

A config with errors is rejected (every problem logged at its ``file:line:col``) and the
running one stays. Otherwise the new routes, hooks, enrichers and sinks are built and opened
first, by the same constructor as at start; only once that worked are they swapped in, in one
step of the event loop, so a webhook or a routing worker sees either the old parts or the new.

Nothing accepted is dropped. The claim loops being replaced stop claiming at a safe point (a
claim under way completes and its items are handled); the events being routed and the attempts
in flight finish with the parts they started with and record their outcome; then those parts
are closed. A sink's new dispatcher starts once its old one has no attempt left, so the sink
never has more than its ``concurrency`` in flight, and keeps its rate limit and any
``Retry-After`` pause when those are unchanged. Pending jobs of sinks no longer configured
become dead letters, as at start.

``server:``, ``queue:`` and ``logging:`` (level and format) are read at start only: a change
there is logged as needing a restart and the running values are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter
from pydantic import BaseModel

from notirouter.api.enricher import Enricher
from notirouter.api.http import HttpClient
from notirouter.api.manager import PluginError
from notirouter.api.operations import OperationalAction
from notirouter.api.sink import Sink
from notirouter.config.errors import ConfigError
from notirouter.config.loader import load_config
from notirouter.delivery.dispatcher import SinkDispatcher
from notirouter.pidfile import pid_file_for, register, unregister
from notirouter.queue.claim_loop import ClaimLoop
from notirouter.queue.protocol import QueueUnavailable
from notirouter.redaction import Redactor
from notirouter.routing.router import EventRouter
from notirouter.runtime import Runtime

log = logging.getLogger("notirouter.reload")
OUTCOMES = ("applied", "rejected", "failed")
RESTART_SECTIONS = ("server", "queue", "logging")


def needs_restart(old: Any, new: Any) -> list[str]:
    """The settings of the start-only sections that differ (``server.port``, ...)."""
    changed = []
    for section in RESTART_SECTIONS:
        before: BaseModel = getattr(old, section)
        after: BaseModel = getattr(new, section)
        for name in type(before).model_fields:
            if getattr(before, name) != getattr(after, name):
                changed.append(f"{section}.{name}")
    return changed


@dataclass
class _Retired:
    """Parts taken out of service, closed once their work in flight has finished."""

    loops: list[ClaimLoop[Any]]
    sinks: list[Sink[Any]]
    enrichers: list[Enricher[Any]]
    http: HttpClient | None
    reconcilers: list[asyncio.Task[None]] = field(default_factory=list)
    runners: list[asyncio.Task[None]] = field(default_factory=list)


class Reloader:
    """Reloads one runtime's config; one reload at a time, in order."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.reloads = Counter(
            "notirouter_config_reloads_total",
            "Config reloads (SIGHUP, 'notirouter reload') by outcome: applied, rejected "
            "(the config has errors), failed (a sink or enricher could not start).",
            ["outcome"],
            registry=runtime.metrics.registry,
        )
        for outcome in OUTCOMES:
            self.reloads.labels(outcome=outcome)
        self._lock = asyncio.Lock()
        # The task running each loop this reloader started, and the loop each dispatcher waits
        # for (the same sink's previous one): reloads in quick succession chain up.
        self._runners: dict[ClaimLoop[Any], asyncio.Task[None]] = {}
        self._predecessors: dict[ClaimLoop[Any], ClaimLoop[Any]] = {}
        self.pending: set[asyncio.Task[str]] = set()

    def request(self) -> None:
        """Reload soon (from a signal handler); requests queue up behind the one running."""
        task = asyncio.get_running_loop().create_task(self.reload(), name="notirouter reload")
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def reload(self) -> str:
        """Read the config again and apply it; the outcome (``applied``, ..., ``ignored``)."""
        async with self._lock:
            outcome = await self._reload()
        if outcome in OUTCOMES:
            self.reloads.labels(outcome=outcome).inc()
        return outcome

    def _report(self, action: OperationalAction, **fields: Any) -> None:
        """The operational event of a reload (throttled like the others, per config file)."""
        path = str(self.runtime.config.path)
        self.runtime.operations.emit(action, path, config=path, **fields)

    async def _reload(self) -> str:
        runtime = self.runtime
        path = runtime.config.path
        if runtime.draining:
            log.warning("reload of %s ignored: shutting down", path)
            return "ignored"
        try:
            config = await asyncio.to_thread(load_config, path)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("%s", problem)
            count = len(exc.problems)
            summary = f"{count} problem{'' if count == 1 else 's'} in {path}"
            log.error("reload rejected: %s; the running config stays", summary)
            first = f": {exc.problems[0]}" if exc.problems else ""
            self._report(
                OperationalAction.CONFIG_REJECTED,
                count=count,
                detail=f"{summary}{first}; the running config stays",
            )
            return "rejected"
        except PluginError as exc:
            log.error("reload rejected: plugin error: %s; the running config stays", exc)
            self._report(
                OperationalAction.CONFIG_REJECTED,
                count=1,
                detail=f"plugin error: {exc}; the running config stays",
            )
            return "rejected"
        for setting in needs_restart(runtime.config.app, config.app):
            log.warning("reload: %s changed: needs a restart; the running value is kept", setting)
        for section in RESTART_SECTIONS:
            setattr(config.app, section, getattr(runtime.config.app, section))
        workers = runtime._router is not None
        try:
            candidate = Runtime(config)  # the same constructor as at start
        except Exception as exc:
            log.exception("reload failed: a sink or enricher could not be built; config kept")
            self._failed(f"a sink or enricher could not be built ({type(exc).__name__})")
            return "failed"
        if workers:
            try:
                await candidate.open_plugins()
            except Exception as exc:
                log.exception("reload failed: a sink or enricher could not start; config kept")
                self._failed(f"a sink or enricher could not start ({type(exc).__name__})")
                await candidate.close_plugins()
                return "failed"
        before = set(runtime.sinks)
        self._swap(candidate, workers)
        after = set(runtime.sinks)
        added = ", ".join(sorted(after - before)) or "none"
        removed = ", ".join(sorted(before - after)) or "none"
        log.info(
            "config reloaded from %s: %d routes, sinks %s (added: %s; removed: %s)",
            path,
            len(config.app.routes),
            ", ".join(sorted(after)) or "none",
            added,
            removed,
        )
        self._report(
            OperationalAction.CONFIG_RELOADED,
            count=len(config.app.routes),
            detail=f"{len(config.app.routes)} routes; sinks added: {added}; removed: {removed}",
        )
        return "applied"

    def _failed(self, why: str) -> None:
        # No secret in it: only the exception's type (the log line has the traceback).
        self._report(
            OperationalAction.CONFIG_REJECTED, count=1, detail=f"{why}; the running config stays"
        )

    def _swap(self, new: Runtime, workers: bool) -> None:
        """Put ``new``'s parts in service: no ``await`` here, so nothing sees half of each."""
        runtime = self.runtime
        _redact_new_secrets(runtime.config.secrets | new.config.secrets)
        retired = _Retired(
            loops=[],
            sinks=list(runtime.sinks.values()),
            enrichers=list(runtime.enrichers.values()),
            http=runtime.http,
        )
        runtime.config = new.config
        runtime.hooks = new.hooks
        runtime.sources = new.sources
        runtime.pipeline = new.pipeline
        runtime.policy = new.policy
        runtime.enrichers = new.enrichers
        runtime.sinks = new.sinks
        runtime.http = new.http
        if not workers:
            retired.http = None  # never opened: --no-workers runs no plugins
            return
        old_loops: list[ClaimLoop[Any]] = list(runtime._dispatchers)
        if runtime._router is not None:
            old_loops.append(runtime._router)
        for loop in old_loops:
            retired.runners.append(self._runner(loop))
            loop.stop(retired.runners[-1])
        runtime._tasks = [task for task in runtime._tasks if task not in retired.runners]
        retired.loops = old_loops
        runtime.retiring.extend(old_loops)
        self._start_loops(new, {d.sink.name: d for d in runtime._dispatchers})
        # The old enrichers' pollers stop (a commit cut short writes nothing) and give their
        # leases up; then the new ones start, holding them as this same process.
        retired.reconcilers, runtime.reconcilers = runtime.reconcilers, []
        for task in retired.reconcilers:
            task.cancel()
        restart = asyncio.get_running_loop().create_task(
            self._restart_reconcilers(retired.reconcilers), name="notirouter reconcilers"
        )
        runtime.retirements.add(restart)
        restart.add_done_callback(runtime.retirements.discard)
        retirement = asyncio.get_running_loop().create_task(
            self._retire(retired), name="notirouter retire"
        )
        runtime.retirements.add(retirement)
        retirement.add_done_callback(runtime.retirements.discard)

    async def _restart_reconcilers(self, old: list[asyncio.Task[None]]) -> None:
        await asyncio.gather(*old, return_exceptions=True)
        if not self.runtime.draining:
            self.runtime.start_reconcilers()

    def _runner(self, loop: ClaimLoop[Any]) -> asyncio.Task[None]:
        runner = self._runners.get(loop) or loop.runner
        assert runner is not None, "a claim loop is retired before it ran"
        return runner

    async def _quiet(self, loop: ClaimLoop[Any]) -> None:
        """Return once ``loop`` (and the loop it waited for) has nothing in progress."""
        predecessor = self._predecessors.get(loop)
        if predecessor is not None:
            await self._quiet(predecessor)
        await asyncio.wait([self._runner(loop)])
        while loop.tasks:
            await asyncio.wait(list(loop.tasks))

    async def _after(self, old: SinkDispatcher | None, new: SinkDispatcher) -> None:
        """Run ``new`` once ``old`` (the same sink's dispatcher) has no attempt left."""
        if old is not None:
            # Shielded: a reload stopping ``new`` meanwhile still finds ``old`` to wait for.
            await asyncio.shield(self._quiet(old))
            self._predecessors.pop(new, None)
        await new.run()

    def _start_loops(self, new: Runtime, old_dispatchers: dict[str, SinkDispatcher]) -> None:
        runtime = self.runtime
        delivery = new.config.app.delivery
        router = EventRouter(
            new.pipeline,
            runtime.queue,
            new.policy,
            runtime.metrics,
            concurrency=delivery.route_workers,
            lease=delivery.lease,
            silences=runtime.silences,
            parsed=runtime.parsed,
        )
        dispatchers = []
        for sink in new.sinks.values():
            old = old_dispatchers.get(sink.name)
            same_limits = old is not None and (old.sink.rate_limit, old.sink.options.burst) == (
                sink.rate_limit,
                sink.options.burst,
            )
            gate = (
                old.gate
                if old is not None and same_limits
                else runtime.queue.sink_gate(sink.name, sink.rate_limit, sink.options.burst)
            )
            # The swap made ``new``'s config and policy the runtime's: built as at start.
            dispatcher = runtime.dispatcher_for(sink, gate)
            if old is not None:
                self._predecessors[dispatcher] = old
            if old is not None and same_limits:
                dispatcher.paused_until = old.paused_until
            dispatchers.append(dispatcher)
            self._spawn(dispatcher, self._after(old, dispatcher), f"sink {sink.name}")
        runtime._router = router
        runtime._dispatchers = dispatchers
        self._spawn(router, router.run(), "router")

    def _spawn(self, loop: ClaimLoop[Any], coroutine: Any, label: str) -> None:
        self.runtime._spawn(coroutine, label)
        self._runners[loop] = self.runtime._tasks[-1]

    async def _retire(self, retired: _Retired) -> None:
        """Wait for the old loops' work in flight, close the old parts, bury orphaned jobs."""
        runtime = self.runtime
        await asyncio.gather(*(self._quiet(loop) for loop in retired.loops))
        await asyncio.gather(*retired.reconcilers, return_exceptions=True)  # before aclose
        for loop in retired.loops:
            runtime.retiring.remove(loop)
            self._runners.pop(loop, None)
            self._predecessors.pop(loop, None)
        closers = [(s.name, s.aclose) for s in retired.sinks]
        closers += [(e.name, e.aclose) for e in retired.enrichers]
        for name, aclose in closers:
            try:
                await aclose()
            except Exception:
                log.exception("error while closing %s", name)
        if retired.http is not None:
            await retired.http.aclose()
        if runtime.draining:
            return  # attempts cut short by the drain are retried after their lease
        try:
            for sink, count in (await runtime.queue.bury_orphans(runtime.sinks)).items():
                log.warning(
                    "%d pending deliveries for sink %s, which is no longer configured, are now "
                    "dead letters (replay them once the sink is back)",
                    count,
                    sink,
                )
        except QueueUnavailable as exc:
            log.error("after the reload, jobs of removed sinks stay pending: %s", exc)


def _redact_new_secrets(secrets: Iterable[str]) -> None:
    # The new sinks' secrets must never reach a log line either; the old ones stay redacted
    # for the lines the retiring parts still write.
    for handler in logging.getLogger().handlers:
        formatter = handler.formatter
        if isinstance(getattr(formatter, "redact", None), Redactor):
            formatter.redact = Redactor(secrets)  # type: ignore[union-attr]


@contextlib.asynccontextmanager
async def reloading(runtime: Runtime) -> AsyncIterator[Reloader]:
    """SIGHUP reloads ``runtime`` while in this block; the pid file names this process."""
    reloader = Reloader(runtime)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, reloader.request)
    pid_file = pid_file_for(runtime.config)
    if pid_file is not None:
        try:
            register(pid_file)
        except OSError as exc:
            log.warning("cannot write the pid file %s (%s): reload with SIGHUP", pid_file, exc)
            pid_file = None
    try:
        yield reloader
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
        if pid_file is not None:
            with contextlib.suppress(OSError):
                unregister(pid_file)
