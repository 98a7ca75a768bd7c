"""Sink health as the dispatchers see it: consecutive failures, recovery, dead letters.

Each process counts the outcomes of its own attempts: on PostgreSQL with several workers,
each notices a failing sink on its own, and the emitter's dedupe per throttle period keeps the
event to one per period in the common case.
"""

from __future__ import annotations

from notirouter.api.operations import OperationalAction
from notirouter.operations.emitter import OperationsEmitter

PAUSE_REPORTED_FROM = 60.0


class SinkHealth:
    """Turns delivery outcomes into ``sink-failing``, ``sink-recovered`` and ``dead-letter``."""

    def __init__(self, emitter: OperationsEmitter, *, failing_after: int) -> None:
        self.emitter = emitter
        self.failing_after = failing_after
        self._failures: dict[str, int] = {}
        self._failing: set[str] = set()

    def state(self, sink: str) -> dict[str, object]:
        """This process's view of ``sink`` for ``notirouter status``: ``failing`` once reported
        failing (until an attempt succeeds), with the failed attempts in a row."""
        return {
            "health": "failing" if sink in self._failing else "ok",
            "consecutive_failures": self._failures.get(sink, 0),
        }

    def delivered(self, sink: str) -> None:
        """An attempt succeeded: a sink reported failing has recovered."""
        failures = self._failures.pop(sink, 0)
        if sink in self._failing:
            self._failing.discard(sink)
            self.emitter.emit(
                OperationalAction.SINK_RECOVERED,
                sink,
                sink=sink,
                detail=f"delivering again after {failures} failed attempts",
                count=failures,
            )

    def failed(self, sink: str, detail: str) -> None:
        """An attempt failed (to be retried or for good)."""
        failures = self._failures.get(sink, 0) + 1
        self._failures[sink] = failures
        if failures >= self.failing_after:
            self._report_failing(sink, failures, f"{failures} attempts in a row failed: {detail}")

    def paused(self, sink: str, seconds: float, detail: str, *, config_error: bool) -> None:
        """The sink pauses: for a configuration error, or a ``Retry-After`` of a minute or
        more, it is failing now (a short rate-limit pause is no trouble worth a message)."""
        if not config_error and seconds < PAUSE_REPORTED_FROM:
            return
        failures = self._failures.get(sink, 0)
        self._report_failing(sink, failures, f"paused {seconds:.0f}s: {detail}")

    def dead(self, sink: str, *, delivery_id: int, event_id: str, error: str) -> None:
        """A delivery became a dead letter (``notirouter dead list`` shows it)."""
        self.emitter.emit(
            OperationalAction.DEAD_LETTER,
            sink,
            sink=sink,
            detail=error,
            delivery_id=delivery_id,
            event_id=event_id,
            count=1,
        )

    def _report_failing(self, sink: str, failures: int, detail: str) -> None:
        if sink in self._failing:
            return  # reported once until it recovers
        self._failing.add(sink)
        self.emitter.emit(
            OperationalAction.SINK_FAILING, sink, sink=sink, detail=detail, count=failures
        )
