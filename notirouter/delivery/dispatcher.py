"""Delivery: one dispatcher per sink claims that sink's due jobs and attempts them.

A dispatcher per sink keeps sinks independent: a sink that is slow, rate limited or failing
only ever holds its own jobs. Each dispatcher owns the sink's rate limit, its concurrency, and
a pause when the service says ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import replace
from typing import Any

from notirouter.api.http import TransportError
from notirouter.api.message import Message
from notirouter.api.sink import Outcome, SendResult, Sink, attempt_bound
from notirouter.delivery.conversations import Conversations
from notirouter.delivery.retry import RetryPolicy
from notirouter.delivery.storm import StormWatch
from notirouter.metrics import Metrics
from notirouter.operations.sink_health import SinkHealth
from notirouter.queue.claim_loop import ClaimLoop, Slot
from notirouter.queue.local_gate import LocalGate
from notirouter.queue.protocol import DeliveryQueue, QueueUnavailable, SinkGate, sink_wake
from notirouter.queue.records import AttemptNote, StoredDelivery
from notirouter.redaction import Redactor, expand_secrets, secret_values
from notirouter.throttled_log import ThrottledLog

log = logging.getLogger("notirouter.delivery")
RETRY_AFTER_CAP = 900.0
# HTTP sinks start their detail with the status (``classify_status``): kept as a number too.
HTTP_STATUS = re.compile(r"HTTP (\d{3})\b")


def note(outcome: str, detail: str | None, paused_until: float | None = None) -> AttemptNote:
    """An attempt's note for the delivery's history, with the HTTP status its detail names."""
    found = HTTP_STATUS.match(detail or "")
    status = int(found.group(1)) if found else None
    return AttemptNote(outcome, detail or None, status, paused_until)


def log_fields(delivery: StoredDelivery, outcome: str, latency: float | None) -> dict[str, Any]:
    """The fields of a delivery's log line (``logging.format: json`` shows each on its own)."""
    fields: dict[str, Any] = {
        "event_id": delivery.event_id,
        "delivery_id": delivery.id,
        "route": delivery.route,
        "sink": delivery.sink,
        "outcome": outcome,
        "attempt": delivery.attempts,
    }
    if latency is not None:
        fields["latency_ms"] = round(latency * 1000, 1)
    return fields


async def attempt(sink: Sink[Any], message: Message, redact: Redactor) -> SendResult:
    """One attempt, with every failure mode turned into a :class:`SendResult`.

    The detail is stored with the job and shown by ``dead show`` and ``send``: whatever
    secret a service echoed in its answer (its hook id, a header) is redacted from it, here,
    for every sink type alike.
    """
    result = await _attempt(sink, message)
    return replace(result, detail=redact(result.detail)) if result.detail else result


def sink_redactor(sink: Sink[Any]) -> Redactor:
    """The secrets of one sink's options, with their parts (URL segments, header tokens)."""
    return Redactor(expand_secrets(secret_values(sink.options)))


async def _attempt(sink: Sink[Any], message: Message) -> SendResult:
    try:
        # The sink's own timeout applies per request; this bound catches a sink that hangs.
        return await asyncio.wait_for(
            sink.send(message), timeout=attempt_bound(sink.options.timeout)
        )
    except TransportError as exc:
        return SendResult.retry(str(exc))
    except TimeoutError:
        return SendResult.retry(f"no result within {attempt_bound(sink.options.timeout):g}s")
    except Exception as exc:
        log.exception("sink %s raised while sending", sink.name, extra={"sink": sink.name})
        return SendResult.retry(f"sink error: {type(exc).__name__}")


class SinkDispatcher(ClaimLoop[StoredDelivery]):
    """Claims and attempts the deliveries of one sink until stopped."""

    lease: float

    def __init__(
        self,
        sink: Sink[Any],
        queue: DeliveryQueue,
        policy: RetryPolicy,
        metrics: Metrics,
        *,
        lease: float,
        gate: SinkGate | None = None,
        health: SinkHealth | None = None,
        conversations: Conversations | None = None,
        storm: StormWatch | None = None,
    ) -> None:
        super().__init__(queue.wakeup(sink_wake(sink.name)), sink.options.concurrency)
        self.label = f"sink {sink.name}"
        self.sink = sink
        self.queue = queue
        self.policy = policy
        self.metrics = metrics
        self.lease = lease
        rate = sink.rate_limit
        self.rate_limited = bool(rate)
        # The rate limit and Retry-After pause: this process's own, or the queue's shared one.
        self.gate = gate or LocalGate(rate, sink.options.burst)
        self.paused_until = 0.0
        self.retry_log = ThrottledLog(log)
        self.redact = sink_redactor(sink)
        self.health = health  # operational events: failing, recovered, dead letters
        # A sink that keeps conversations gets its jobs one per thread key at a time, in order.
        self.conversations = conversations if sink.conversation() is not None else None
        self.storm = storm if self.rate_limited else None  # README "Storm mode"
        # The turns the gate gave the coming claim (delays after ``_turns_at``, monotonic), and
        # when each claimed job's turn comes (deliveries whose token the refill still brings).
        self._turns: list[float] = []
        self._turns_at = 0.0
        self._not_before: dict[int, float] = {}

    async def claim(self, limit: int) -> list[StoredDelivery]:
        """This sink's due deliveries."""
        claimed = await self.queue.claim_deliveries(
            self.sink.name, limit, self.lease, in_order=self.conversations is not None
        )
        turns, self._turns = self._turns, []
        if self.rate_limited and len(claimed) < len(turns):
            await self.gate.give_back(len(turns) - len(claimed))  # tokens found no work
        for delivery, delay in zip(claimed, turns, strict=False):
            if delay > 0:
                self._not_before[delivery.id] = self._turns_at + delay
        return claimed

    async def renew(self, delivery: StoredDelivery) -> bool:
        """Keep a delivery still being attempted (or recorded) ours."""
        return await self.queue.renew_delivery_lease(delivery, self.lease)

    async def next_due(self) -> float | None:
        """When this sink's next delivery falls due."""
        return await self.queue.next_delivery_due(self.sink.name)

    async def before_claim(self, free: int) -> int:
        """Honour a ``Retry-After`` pause, then the rate limit: one job per token the bucket
        holds or brings within :data:`~notirouter.delivery.ratelimit.TOKEN_HORIZON`.

        A sink in storm mode folds its backlog first: the jobs it claims next are then
        digests of everything a route had waiting.
        """
        if self.storm is not None and self.storm.due():
            # Before the tokens, not beside them: a token taken is used at its turn, so the
            # check's round trip never lets two messages out back to back.
            await self._check_storm()
        self._turns = await self.gate.take(free)
        self._turns_at = time.monotonic()
        return len(self._turns)

    async def _check_storm(self) -> None:
        assert self.storm is not None
        try:
            await self.storm.check()
        except QueueUnavailable as exc:
            # Storm mode is an optimisation: the backlog still drains one by one.
            log.warning("sink %s: storm mode could not be checked: %s", self.sink.name, exc)

    async def handle(self, delivery: StoredDelivery, slot: Slot) -> None:
        """Attempt at the job's turn (its token was taken before the claim), record the
        outcome."""
        turn = self._not_before.pop(delivery.id, 0.0) - time.monotonic()
        if turn > 0:
            await asyncio.sleep(turn)  # at most TOKEN_HORIZON: the refill brings its token
        try:
            message = Message.model_validate_json(delivery.message_json)
        except ValueError as exc:
            # Stored by a version that wrote another shape: retrying cannot help.
            error = f"stored message unreadable: {type(exc).__name__}"
            await self.queue.finish_delivery(
                delivery, state="dead", error=error, attempt=note("unreadable", error)
            )
            self.metrics.dead_letters.labels(sink=self.sink.name).inc()
            self._dead(delivery, error)
            log.error(
                "sink %s: delivery %s is dead: %s",
                self.sink.name,
                delivery.id,
                error,
                extra=log_fields(delivery, "dead", None),
            )
            return
        try:
            started = time.perf_counter()
            result = await self._deliver(message)
            slot.release()  # the lease keeps the job ours while the outcome is recorded
            latency = time.perf_counter() - started
            self.metrics.observe_attempt(self.sink.name, result.outcome, latency)
            await self._record(delivery, result, latency)
            if self.storm is not None and self.storm.active:
                self.wakeup.set()  # the next check may find the backlog drained: storm ends
        except asyncio.CancelledError:
            raise  # the lease expires and another attempt follows: at-least-once
        except QueueUnavailable as exc:
            # The queue logged the cause once; no traceback per delivery in flight.
            log.warning(
                "delivery %s to sink %s could not be recorded: %s", delivery.id, self.sink.name, exc
            )
        except Exception:
            log.exception(
                "delivery %s to sink %s could not be recorded", delivery.id, self.sink.name
            )

    async def _deliver(self, message: Message) -> SendResult:
        if self.conversations is None:
            return await attempt(self.sink, message, self.redact)
        return await self.conversations.deliver(
            self.sink, message, lambda part: attempt(self.sink, part, self.redact)
        )

    async def _record(self, delivery: StoredDelivery, result: SendResult, latency: float) -> None:
        name = self.sink.name
        fields = log_fields(delivery, result.outcome.value, latency)
        if result.outcome is Outcome.DELIVERED:
            await self.queue.finish_delivery(
                delivery, state="done", error=None, attempt=note("delivered", result.detail)
            )
            if self.health is not None:
                self.health.delivered(name)
            log.info(
                "delivered event %s to sink %s (route %s) in %.1fms",
                delivery.event_id,
                name,
                delivery.route,
                latency * 1000,
                extra=fields,
            )
            return
        if self.health is not None:
            self.health.failed(name, result.detail or result.outcome.value)
        if result.outcome is Outcome.PERMANENT:
            await self.queue.finish_delivery(
                delivery,
                state="dead",
                error=result.detail,
                attempt=note("permanent", result.detail),
            )
            self.metrics.dead_letters.labels(sink=name).inc()
            self._dead(delivery, result.detail or "refused")
            log.error(
                "sink %s refused event %s for good: %s",
                name,
                delivery.event_id,
                result.detail,
                extra=fields,
            )
            return
        if result.config_error:
            fields["outcome"] = "misconfigured"
        now = time.time()
        retry_after = result.retry_after
        paused_until: float | None = None
        if retry_after:
            # Honoured up to max(backoff_max, 15 min): one answer must not park the sink for a
            # day, nor push the job past its maximum age at once.
            retry_after = min(retry_after, max(self.policy.maximum, RETRY_AFTER_CAP))
            if now + retry_after > self.paused_until + 1:
                self._log_pause(retry_after, result, fields)
                if self.health is not None:
                    self.health.paused(
                        name, retry_after, result.detail, config_error=result.config_error
                    )
            self.paused_until = max(self.paused_until, now + retry_after)
            await self.gate.pause(self.paused_until)
            paused_until = self.paused_until
        delay = self.policy.delay(delivery.attempts, retry_after)
        if self.policy.gives_up(delivery.created_at, now, delay):
            error = f"gave up after {delivery.attempts} attempts: {result.detail}"
            fields["outcome"] = "dead"
            await self.queue.finish_delivery(
                delivery,
                state="dead",
                error=error,
                attempt=note("dead", result.detail, paused_until),
            )
            self.metrics.dead_letters.labels(sink=name).inc()
            self._dead(delivery, error)
            log.error("sink %s: event %s %s", name, delivery.event_id, error, extra=fields)
            return
        await self.queue.finish_delivery(
            delivery,
            state="pending",
            error=result.detail,
            retry_in=delay,
            attempt=note(
                "misconfigured" if result.config_error else "retry", result.detail, paused_until
            ),
        )
        if result.config_error:
            return  # the pause line said why, once per pause
        # One line per sink and minute: a sink that is down fails every delivery the same way.
        self.retry_log.log(
            logging.WARNING,
            name,
            "sink %s: attempt %d for event %s failed (%s); retrying in %.1fs",
            name,
            delivery.attempts,
            delivery.event_id,
            result.detail,
            delay,
            extra=fields,
        )

    def _dead(self, delivery: StoredDelivery, error: str) -> None:
        if self.health is not None:
            self.health.dead(
                self.sink.name, delivery_id=delivery.id, event_id=delivery.event_id, error=error
            )

    def _log_pause(self, pause: float, result: SendResult, fields: dict[str, Any]) -> None:
        if result.config_error:
            # Every message would fail the same way: one loud line per pause, not a retry
            # line per message for a day.
            log.error(
                "sink %s: configuration error: %s; messages are kept, the sink pauses %.0fs "
                "and tries again (fix the config and restart to resume at once)",
                self.sink.name,
                result.detail,
                pause,
                extra=fields,
            )
        else:
            log.warning(
                "sink %s: pausing %.1fs as the service asked", self.sink.name, pause, extra=fields
            )
