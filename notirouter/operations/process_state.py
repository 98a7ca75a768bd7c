"""What a serving process holds only in memory, published in the queue for ``notirouter status``.

The enrichers' caches and circuit breakers, each sink's attempts in flight, its local pause and
its health live in one process's memory. Every ``server.status_interval`` each process
(``serve`` or ``worker``) writes one small report of them to the queue, keyed by a process id
(host, pid and a random part: a reused pid is another process), with the time after which it
no longer counts as live (three intervals). ``status`` shows every live report; a process that
stops cleanly withdraws its own, and one that was killed drops out once its report expires.

Why the queue and not an admin endpoint: ``status`` already reads only the queue, from any
host that reaches it, without knowing where the processes listen; with several processes on
PostgreSQL one read shows them all, and a process behind ``--host 0.0.0.0`` opens nothing more
to the network. The cost is one small write per process and interval, and a state up to one
interval old (the report says when it was taken).

Plugins contribute through ``Sink.status()`` and ``Enricher.status()``; what they return is
redacted against their own secrets before it is stored.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from notirouter.queue.inspection_records import ProcessReport
from notirouter.queue.protocol import ProcessStates, QueueUnavailable
from notirouter.redaction import Redactor, expand_secrets, secret_values
from notirouter.throttled_log import ThrottledLog

log = logging.getLogger("notirouter.status")

LIVE_INTERVALS = 3
"""A report counts as live this many intervals after it was written: one late write (a busy
queue) does not make a process vanish from ``status``."""


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    """Who reports: an id unique per process run, its host and pid, when it started."""

    process_id: str
    host: str
    pid: int
    started_at: float

    @classmethod
    def of_this_process(cls) -> ProcessIdentity:
        """This process, now."""
        host, pid = socket.gethostname(), os.getpid()
        return cls(f"{host}/{pid}/{uuid.uuid4().hex[:8]}", host, pid, time.time())


def plugin_state(state: Mapping[str, Any], redact: Redactor) -> Any:
    """A plugin's ``status()`` as JSON data, every string redacted against its secrets.

    A value JSON cannot hold is shown as its ``str``: a plugin's slip must not stop the report.
    """
    return _redacted(json.loads(json.dumps(state, default=str)), redact)


def _redacted(value: Any, redact: Redactor) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(str(k)): _redacted(v, redact) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v, redact) for v in value]
    return value


def options_redactor(options: Any) -> Redactor:
    """The secrets of a plugin's options, with their parts (URL segments, header tokens)."""
    return Redactor(expand_secrets(secret_values(options)))


def safe_status(name: str, status: Callable[[], Mapping[str, Any]], redact: Redactor) -> Any:
    """``status()`` of the plugin ``name``, redacted; an error says so instead of a state."""
    try:
        return plugin_state(status(), redact)
    except Exception as exc:
        log.exception("%s: its status() raised", name)
        return {"error": f"status() raised {type(exc).__name__}"}


class ProcessStatePublisher:
    """Writes this process's report every ``interval`` seconds until cancelled."""

    def __init__(
        self,
        store: ProcessStates,
        interval: float,
        collect: Callable[[], dict[str, Any]],
        identity: ProcessIdentity | None = None,
    ) -> None:
        self.store = store
        self.interval = interval
        self.collect = collect
        self.identity = identity or ProcessIdentity.of_this_process()
        self.errors = ThrottledLog(log)

    def report(self) -> ProcessReport:
        """This process's report now."""
        now = time.time()
        me = self.identity
        state = json.dumps(self.collect(), ensure_ascii=False, default=str)
        return ProcessReport(
            me.process_id,
            me.host,
            me.pid,
            me.started_at,
            now,
            now + LIVE_INTERVALS * self.interval,
            state,
        )

    async def publish(self) -> None:
        """Write the report now (a queue that is down is logged once a minute, not raised)."""
        try:
            await self.store.publish(self.report())
        except QueueUnavailable as exc:
            self.errors.log(logging.WARNING, "publish", "cannot publish the status: %s", exc)
        except Exception:
            log.exception("cannot publish the status")

    async def run(self) -> None:
        """Publish at once, then every interval."""
        while True:
            await self.publish()
            await asyncio.sleep(self.interval)

    async def withdraw(self) -> None:
        """Remove this process's report (it stops): ``status`` no longer lists it."""
        try:
            await self.store.withdraw(self.identity.process_id)
        except Exception as exc:
            # It expires on its own after three intervals.
            log.warning("cannot withdraw the status report: %s", exc)
