"""The one way to raise an operational event: :meth:`OperationsEmitter.emit`.

An emitted event is enqueued like a received webhook (hook and source ``notirouter``), so it is
durable and the YAML routes decide where it goes. Each kind is throttled per subject (a sink,
an enricher): a sink that is down fails every delivery, and one event per ``throttle`` says so;
the next one carries how many were held back (``suppressed``).

The dedupe key names the throttle period, so on PostgreSQL several processes that notice the
same trouble in the same period store it once (the queue's dedupe does it); across a period
boundary two processes may each report it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from notirouter.api.operations import OPERATIONAL_EVENT_TYPE, OperationalAction
from notirouter.config.operations_settings import OperationsConfig
from notirouter.queue.protocol import IngestQueue, QueueUnavailable
from notirouter.throttled_log import ThrottledLog

log = logging.getLogger("notirouter.operations")
OPERATIONS_HOOK = OPERATIONAL_EVENT_TYPE
"""The hook name operational events are stored under (no such hook receives webhooks)."""
_MAX_KEYS = 4096  # subjects are configured sinks and enrichers; stay bounded regardless


class OperationsEmitter:
    """Throttles and enqueues operational events; never raises into the caller."""

    def __init__(
        self,
        queue: IngestQueue,
        settings: OperationsConfig,
        *,
        routed: Callable[[str], bool] = lambda action: True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.queue = queue
        self.routed = routed
        self.settings = settings
        self.clock = clock
        self.process = f"{socket.gethostname()}:{os.getpid()}"
        self._last: dict[tuple[str, str], float] = {}
        self._held: dict[tuple[str, str], int] = {}
        self._pending: set[asyncio.Task[None]] = set()
        self._failures = ThrottledLog(log)
        # Off until the workers run: a dry run (``route``, ``send``) must not write the queue.
        self.active = False

    def emit(self, action: OperationalAction | str, subject: str = "", **fields: Any) -> bool:
        """Enqueue a ``type: notirouter`` event unless one of this kind and subject was
        emitted less than ``operations.throttle`` ago; ``True`` if it will be enqueued.

        ``fields`` become attributes of the event (``sink``, ``enricher``, ``detail``,
        ``count``, or a feature's own, e.g. ``ids``); they must be JSON data. Storing happens
        in the background: this never blocks nor raises, so a delivery loop may call it.
        """
        action = str(action)
        if not (self.active and self.settings.enabled and self.routed(action)):
            return False  # no route names it: nobody would be told, nothing to store
        key = (action, subject)
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.settings.throttle:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        if len(self._last) >= _MAX_KEYS:
            self._last.clear()
        self._last[key] = now
        payload: dict[str, Any] = {
            **fields,
            "type": OPERATIONAL_EVENT_TYPE,
            "action": action,
            "subject": subject,
            "suppressed": self._held.pop(key, 0),
            "process": self.process,
            "at": now,
        }
        period = int(now // self.settings.throttle)
        dedupe_key = f"{OPERATIONAL_EVENT_TYPE}:{action}:{subject}:{period}"
        task = asyncio.get_running_loop().create_task(self._store(action, dedupe_key, payload))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return True

    async def _store(self, action: str, dedupe_key: str, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, ensure_ascii=False, default=str).encode()
        try:
            await self.queue.enqueue(
                hook=OPERATIONS_HOOK,
                source=OPERATIONAL_EVENT_TYPE,
                dedupe_key=dedupe_key,
                body=body,
            )
        except QueueUnavailable as exc:
            self._failures.log(
                logging.ERROR, action, "operational event %s not stored: %s", action, exc
            )
        except Exception:
            log.exception("operational event %s not stored", action)
        else:
            log.info("operational event %s (%s)", action, payload["subject"] or "-")

    async def flush(self) -> None:
        """Wait until the events emitted so far are stored (at drain, before the queue closes)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
