"""The heartbeat: ping a dead-man's-switch URL while notirouter is ready, and only then.

An outside monitor (healthchecks-style) pages when the pings stop: when the process is gone,
and also when it runs but cannot do its job (the queue cannot commit, a worker loop stopped,
it is draining), the same conditions as ``/readyz``. Every process pings on its own (on
PostgreSQL with several processes, each one): a monitor per process, or one shared by all,
which then pages only when none is ready.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from notirouter.api.http import HttpClient, HttpRequest, TransportError
from notirouter.config.operations_settings import HeartbeatConfig

log = logging.getLogger("notirouter.heartbeat")
ReadinessCheck = Callable[[], Awaitable[str | None]]
"""``None`` when ready, else why not."""


class Heartbeat:
    """Pings ``heartbeat.url`` every ``heartbeat.every`` seconds while ``ready()`` says so."""

    def __init__(self, settings: HeartbeatConfig, http: HttpClient, ready: ReadinessCheck) -> None:
        self.settings = settings
        self.http = http
        self.ready = ready
        self.sent = 0
        self._withheld: str | None = None  # the reason last logged, to log changes only
        self._failing = False

    async def run(self) -> None:
        """Until cancelled. The first ping waits one interval: the receiver is listening by
        then, or the process has exited."""
        while True:
            await asyncio.sleep(self.settings.every)
            await self.beat()

    async def beat(self) -> None:
        """One interval's decision: ping if ready, else hold the ping back (and say why)."""
        try:
            problem = await self.ready()
        except Exception as exc:  # a broken check must not look like health
            problem = f"readiness check failed ({type(exc).__name__})"
        if problem is not None:
            if problem != self._withheld:
                log.warning("heartbeat withheld: %s", problem)
            self._withheld = problem
            return
        if self._withheld is not None:
            log.warning("heartbeat resumes: ready again")
            self._withheld = None
        await self._ping()

    async def _ping(self) -> None:
        request = HttpRequest(
            url=self.settings.url.get_secret_value(),
            method=self.settings.method,
            data=b"" if self.settings.method == "POST" else None,
        )
        try:
            response = await self.http.send(request, timeout=self.settings.timeout)
        except TransportError as exc:
            self._report(f"{exc}")
            return
        if response.status >= 400:
            self._report(f"HTTP {response.status}")
            return
        self.sent += 1
        if self._failing:
            log.warning("heartbeat delivered again")
            self._failing = False

    def _report(self, reason: str) -> None:
        # The URL is a secret (it identifies the check): only the reason is logged.
        if not self._failing:
            log.warning("heartbeat ping failed: %s", reason)
        self._failing = True
