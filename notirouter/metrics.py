"""Prometheus metrics, one registry per runtime. Labels are config names, never secrets."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from notirouter.api.sink import Outcome

QUEUE_STATES = {
    "events": ("pending", "routed", "failed"),
    "deliveries": ("pending", "done", "dead", "folded"),
}


class Metrics:
    """Counters for the receiver, routing and delivery, and queue depth gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events_received = Counter(
            "notirouter_events_received_total",
            "Webhook requests by hook name and result (accepted, duplicate, rejected status).",
            ["hook", "result"],
            registry=self.registry,
        )
        self.events_routed = Counter(
            "notirouter_events_routed_total",
            "Events routed into delivery jobs.",
            registry=self.registry,
        )
        self.attempts = Counter(
            "notirouter_delivery_attempts_total",
            "Delivery attempts by sink and outcome (delivered, retry, permanent).",
            ["sink", "outcome"],
            registry=self.registry,
        )
        self.attempt_seconds = Histogram(
            "notirouter_delivery_attempt_seconds",
            "Duration of delivery attempts by sink.",
            ["sink"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "notirouter_dead_letters_total",
            "Deliveries that ended as dead letters, by sink.",
            ["sink"],
            registry=self.registry,
        )
        self.events_unroutable = Counter(
            "notirouter_events_unroutable_total",
            "Events that could not be parsed, routed or serialised, failed at once (see "
            "'notirouter dead list'), by stage.",
            ["stage"],
            registry=self.registry,
        )
        self.silenced = Counter(
            "notirouter_silenced_total",
            "Messages not sent because a silence applied (recorded with the event), by route.",
            ["route"],
            registry=self.registry,
        )
        self.held = Counter(
            "notirouter_window_held_total",
            "Messages held until their route's time window is active again, by route.",
            ["route"],
            registry=self.registry,
        )
        # Storm mode (README "Storm mode"): on a shared backend, the counters count in the
        # process that started, folded or ended; the gauge is every process's latest view.
        self.storm_active = Gauge(
            "notirouter_storm_mode",
            "1 while the sink is in storm mode (its backlog is folded into digests), else 0.",
            ["sink"],
            registry=self.registry,
        )
        self.storm_started = Counter(
            "notirouter_storm_started_total",
            "Times storm mode started, by sink.",
            ["sink"],
            registry=self.registry,
        )
        self.storm_ended = Counter(
            "notirouter_storm_ended_total",
            "Times storm mode ended, by sink.",
            ["sink"],
            registry=self.registry,
        )
        self.storm_folded = Counter(
            "notirouter_storm_folded_total",
            "Deliveries storm mode folded into digests, by sink.",
            ["sink"],
            registry=self.registry,
        )
        self.storm_digests = Counter(
            "notirouter_storm_digests_total",
            "Digest deliveries storm mode created, by sink.",
            ["sink"],
            registry=self.registry,
        )
        self.reconcile_recovered = Counter(
            "notirouter_reconcile_recovered_total",
            "Changes found by reconciliation that no webhook had delivered, by enricher.",
            ["enricher"],
            registry=self.registry,
        )
        self._received: dict[tuple[str, str], Any] = {}
        self.queue_jobs = Gauge(
            "notirouter_queue_jobs",
            "Events and deliveries in the queue by kind and state.",
            ["kind", "state"],
            registry=self.registry,
        )

    def count_received(self, hook: str, result: str) -> None:
        """Count one webhook request (label children are cached: this runs per request)."""
        child = self._received.get((hook, result))
        if child is None:
            child = self._received[(hook, result)] = self.events_received.labels(
                hook=hook, result=result
            )
        child.inc()

    def observe_attempt(self, sink: str, outcome: Outcome, seconds: float) -> None:
        """Count one delivery attempt and its duration."""
        self.attempts.labels(sink=sink, outcome=outcome.value).inc()
        self.attempt_seconds.labels(sink=sink).observe(seconds)

    def set_queue_counts(self, counts: dict[str, int]) -> None:
        """Update the queue gauges from :meth:`SqliteQueue.counts`.

        A state with no rows is absent from ``counts``: it must read 0, not keep the value of
        the last scrape (a backlog that drained would otherwise look stuck forever).
        """
        for kind, states in QUEUE_STATES.items():
            for state in states:
                value = counts.get(f"{kind}_{state}", 0)
                self.queue_jobs.labels(kind=kind, state=state).set(value)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
