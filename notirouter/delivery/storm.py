"""Storm mode of rate-limited sinks (README "Storm mode").

A sink limited to 4 messages a second needs two minutes for a backlog of 500: storm mode
folds such a backlog, per route, into digests instead. The dispatcher asks :class:`StormWatch`
before each claim; the queue decides and folds in one transaction (``StormStore``), so on a
shared backend every process sees one storm per sink, and the process that started or ended
it is the one that logs it, counts it and emits ``storm-started``/``storm-ended``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from notirouter.api.operations import OperationalAction
from notirouter.api.sink import Sink, StormOptions
from notirouter.delivery.digests import storm_digest
from notirouter.metrics import Metrics
from notirouter.operations.emitter import OperationsEmitter
from notirouter.queue.protocol import StormStore

log = logging.getLogger("notirouter.storm")
# A backlog worth storm.after (a minute by default) does not build up in half a second.
CALM_CHECK_INTERVAL = 0.5


def storm_after(sink: Sink[Any], default: StormOptions) -> float | None:
    """The backlog, in seconds at its rate limit, beyond which ``sink`` storms (``None``: never).

    The sink's own ``storm:`` wins over the top-level one; a sink without a rate limit drains
    as fast as it can and never storms.
    """
    if not sink.rate_limit:
        return None
    own: StormOptions | None = sink.options.storm
    if own is None:
        chosen = default
    elif own.enabled and "after" not in own.model_fields_set:
        chosen = default.model_copy(update={"enabled": True})  # storm: true: the global after
    else:
        chosen = own
    return chosen.after if chosen.enabled else None


def storm_setting(sink: Sink[Any], default: StormOptions) -> str:
    """What storm mode does for ``sink``, in words (the dry run and the routing record)."""
    rate = sink.rate_limit
    if not rate:
        return "off: no rate limit"
    after = storm_after(sink, default)
    if after is None:
        return "off (storm: false)"
    return (
        f"on: a backlog over {after:g}s at {rate:g}/s ({int(rate * after)} messages) "
        "is folded into digests per route"
    )


class StormWatch:
    """One sink's storm mode as its dispatcher sees it: checked before every claim."""

    def __init__(
        self,
        sink: Sink[Any],
        queue: StormStore,
        after: float,
        metrics: Metrics,
        operations: OperationsEmitter | None = None,
    ) -> None:
        self.name = sink.name
        self.rate = float(sink.rate_limit or 0)
        self.after = after
        self.queue = queue
        self.metrics = metrics
        self.operations = operations
        self.active = False
        self._checked = -CALM_CHECK_INTERVAL

    def due(self) -> bool:
        """Whether to check before this claim: always in a storm (each claim folds what came
        meanwhile), else at most every :data:`CALM_CHECK_INTERVAL` seconds."""
        return self.active or time.monotonic() - self._checked >= CALM_CHECK_INTERVAL

    async def check(self) -> None:
        """Let the queue start, fold or end storm mode; say so when this check did."""
        self._checked = time.monotonic()
        step = await self.queue.storm_step(
            self.name, rate=self.rate, after=self.after, build=storm_digest
        )
        self.active = step.active
        self.metrics.storm_active.labels(sink=self.name).set(1 if step.active else 0)
        if step.started:
            self.metrics.storm_started.labels(sink=self.name).inc()
            detail = (
                f"{step.found} messages pending would take over {self.after:g}s at "
                f"{self.rate:g}/s: they are folded into one digest per route until it caught up"
            )
            log.warning(
                "sink %s: storm mode started: %s",
                self.name,
                detail,
                extra={"sink": self.name, "outcome": "storm-started", "backlog": step.found},
            )
            self._emit(OperationalAction.STORM_STARTED, step.found, detail)
        if step.folded:
            self.metrics.storm_folded.labels(sink=self.name).inc(step.folded)
            self.metrics.storm_digests.labels(sink=self.name).inc(step.digests)
            log.info(
                "sink %s: storm mode folded %d messages into %d digests",
                self.name,
                step.folded,
                step.digests,
                extra={"sink": self.name, "folded": step.folded, "digests": step.digests},
            )
        if step.ended:
            self.metrics.storm_ended.labels(sink=self.name).inc()
            detail = "the backlog drained: messages go one by one again"
            log.warning(
                "sink %s: storm mode ended: %s",
                self.name,
                detail,
                extra={"sink": self.name, "outcome": "storm-ended"},
            )
            self._emit(OperationalAction.STORM_ENDED, 0, detail)

    def _emit(self, action: OperationalAction, count: int, detail: str) -> None:
        if self.operations is not None:
            self.operations.emit(action, self.name, sink=self.name, count=count, detail=detail)
