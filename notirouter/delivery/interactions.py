"""The interaction worker: clicks queued by ``/interactions/*``, written back and answered.

Per click, in steps that are recorded as they succeed (a retry never repeats a done step):
who may act (``actions.allow``), the status change (acknowledge, reject) and a comment naming
the chat user through the sink's ``actions.enricher``, then the answer in the chat (a reply in
the alert's thread and the first message noted, or "could not ...: why" to the user).
A transient failure is retried with the delivery backoff; the user hears of it once, then of
the final outcome. Nothing says "done" unless the service said so.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from notirouter.api.interaction import (
    ActionReport,
    AlertWriter,
    ChatAction,
    Click,
    InteractiveSink,
)
from notirouter.api.sink import Outcome, SendResult
from notirouter.delivery.retry import RetryPolicy
from notirouter.queue.claim_loop import ClaimLoop, Slot
from notirouter.queue.protocol import INTERACTIONS_WAKE, QueueUnavailable
from notirouter.queue.records import StoredInteraction

if TYPE_CHECKING:
    from notirouter.runtime import Runtime

log = logging.getLogger("notirouter.interactions")
# A click is about now: past an hour of failures, say so rather than act much later.
MAX_AGE_SECONDS = 3600.0
CONCURRENCY = 4


class Refused(Exception):
    """A step failed for good: the user is told ``str(self)``."""


class Transient(Exception):
    """A step failed for now: try again (no sooner than ``after`` seconds)."""

    def __init__(self, detail: str, after: float | None) -> None:
        super().__init__(detail)
        self.after = after


class InteractionWorker(ClaimLoop[StoredInteraction]):
    """Claims queued clicks from the backend (any process's) and carries them out."""

    label = "interactions"

    def __init__(self, runtime: Runtime, policy: RetryPolicy, lease: float) -> None:
        super().__init__(runtime.queue.wakeup(INTERACTIONS_WAKE), CONCURRENCY)
        self.runtime = runtime
        self.store = runtime.queue.interactions()
        self.policy = RetryPolicy(
            policy.initial, policy.maximum, min(policy.max_age, MAX_AGE_SECONDS)
        )
        # Not ``ClaimLoop.lease``: a click's lease is not renewed (its store has no renewal).
        self.claim_lease = lease

    async def claim(self, limit: int) -> list[StoredInteraction]:
        """Due clicks under a lease."""
        return await self.store.claim(limit, self.claim_lease)

    async def next_due(self) -> float | None:
        """When the next click falls due."""
        return await self.store.next_due()

    async def handle(self, item: StoredInteraction, slot: Slot) -> None:
        """Carry out one click; a queue outage leaves it to its lease."""
        try:
            await self._carry_out(item)
        except QueueUnavailable as exc:
            log.error("interactions: cannot record click %d: %s", item.id, exc)
        except Exception:
            log.exception("interactions: click %d failed", item.id)
            delay = self.policy.delay(item.attempts)
            if self.policy.gives_up(item.created_at, time.time(), delay):
                await self.store.finish(item, state="failed", result=item.result or "{}")
            else:
                await self.store.finish(
                    item, state="pending", result=item.result or "{}", retry_in=delay
                )

    async def _carry_out(self, item: StoredInteraction) -> None:
        click = Click.model_validate_json(item.payload)
        record: dict[str, Any] = json.loads(item.result) if item.result else {}
        record.update(
            who=click.user_id,
            name=click.user_name,
            what=click.action.value,
            alert=click.alert,
            when=click.received_at,
        )
        steps: dict[str, str] = record.setdefault("steps", {})
        sink = self.runtime.sinks.get(click.sink)
        actions = sink.actions() if isinstance(sink, InteractiveSink) else None
        if not isinstance(sink, InteractiveSink) or actions is None:
            record.update(outcome="failed", answer=f"sink {click.sink} has no actions any more")
            await self._finish(item, click, record, "failed")
            return
        try:
            if actions.allow and "allowed" not in steps:
                if not await sink.is_allowed(click, actions.allow):
                    raise Refused("you are not allowed to act on alerts here")
                steps["allowed"] = "yes"
            writer = self.runtime.enrichers.get(actions.enricher)
            if not isinstance(writer, AlertWriter):
                raise Refused(f"enricher {actions.enricher} cannot act on alerts")
            await self._write_back(writer, click, steps)
        except Refused as exc:
            record.update(outcome="refused", answer=str(exc))
            await self._tell(sink, ActionReport(click, False, f"could not {_verb(click)}: {exc}"))
            await self._finish(item, click, record, "failed")
            return
        except Transient as exc:
            await self._retry(item, click, sink, record, exc)
            return
        done = ActionReport(click, True, f"{click.action.done} by {click.who} at {click.stamp()}")
        told = await self._tell(sink, done)
        if told.outcome is Outcome.RETRY:
            record.update(outcome="written back, chat not told yet", answer=told.detail)
            await self._retry(item, click, sink, record, Transient(told.detail, told.retry_after))
            return
        record.update(outcome="done", answer=steps.get("status") or steps.get("comment", ""))
        record["told"] = told.outcome is Outcome.DELIVERED
        await self._finish(item, click, record, "done")

    async def _write_back(self, writer: AlertWriter, click: Click, steps: dict[str, str]) -> None:
        if click.action is not ChatAction.COMMENT and "status" not in steps:
            reason = f"{click.action.done} from chat by {click.who}"
            steps["status"] = _step(await writer.change_status(click.alert, click.action, reason))
        if "comment" not in steps:
            content = click.text or f"{click.action.done} by {click.who} from chat (notirouter)"
            result = await writer.add_comment(click.alert, content, click.who)
            if click.action is not ChatAction.COMMENT and result.outcome is Outcome.PERMANENT:
                # The status changed: that is the action. A refused comment is noted, not fatal.
                steps["comment"] = f"not added: {result.detail}"
            else:
                steps["comment"] = _step(result)

    async def _retry(
        self,
        item: StoredInteraction,
        click: Click,
        sink: InteractiveSink,
        record: dict[str, Any],
        failure: Transient,
    ) -> None:
        delay = self.policy.delay(item.attempts, failure.after)
        if self.policy.gives_up(item.created_at, time.time(), delay):
            record.update(outcome="failed", answer=str(failure))
            text = f"could not {_verb(click)}: {failure} (gave up after {item.attempts} tries)"
            await self._tell(sink, ActionReport(click, False, text))
            await self._finish(item, click, record, "failed")
            return
        record.update(outcome="retrying", answer=str(failure))
        if not record.get("warned"):
            record["warned"] = True
            text = f"could not {_verb(click)} yet: {failure}; trying again"
            await self._tell(sink, ActionReport(click, False, text, final=False))
        log.info(
            "interactions: click %d (%s %s alert %s): %s; retry in %.3gs",
            item.id,
            click.user_id,
            click.action.value,
            click.alert,
            failure,
            delay,
        )
        await self.store.finish(item, state="pending", result=json.dumps(record), retry_in=delay)

    async def _tell(self, sink: InteractiveSink, report: ActionReport) -> SendResult:
        try:
            told = await sink.tell(report)
        except Exception as exc:  # a transport error, a bug: the action's record says it
            log.warning("interactions: could not answer in chat: %s", exc)
            return SendResult.retry(f"could not answer in chat: {type(exc).__name__}")
        if told.outcome is not Outcome.DELIVERED:
            log.warning("interactions: could not answer in chat: %s", told.detail)
        return told

    async def _finish(
        self, item: StoredInteraction, click: Click, record: dict[str, Any], state: str
    ) -> None:
        log.info(
            "interactions: click %d: %s %s alert %s (sink %s): %s: %s",
            item.id,
            click.user_id,
            click.action.value,
            click.alert,
            click.sink,
            record.get("outcome"),
            record.get("answer", ""),
        )
        await self.store.finish(item, state=state, result=json.dumps(record))


def _step(result: SendResult) -> str:
    if result.outcome is Outcome.DELIVERED:
        return result.detail or "done"
    if result.outcome is Outcome.RETRY:
        raise Transient(result.detail, result.retry_after)
    raise Refused(result.detail)


def _verb(click: Click) -> str:
    return "comment on the alert" if click.action is ChatAction.COMMENT else click.action.verb
