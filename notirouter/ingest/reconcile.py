"""The core side of reconciliation: a :class:`~notirouter.api.reconcile.ChangeFeed` per
enricher, over the queue's :class:`~notirouter.queue.protocol.ChangeLedger`.

Reconciled changes enter the queue as events, like webhooks, under the hook name
``reconcile:<enricher>``; each stream is named ``<enricher>:<stream>`` in the ledger, and the
lease holder is this process (:func:`process_holder`): a reload's new enricher holds the
leases its predecessor held.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
from collections.abc import Sequence

from notirouter.api.operations import OperationalAction
from notirouter.api.reconcile import ReconciledChange
from notirouter.metrics import Metrics
from notirouter.operations.emitter import OperationsEmitter
from notirouter.queue.protocol import ChangeLedger
from notirouter.queue.records import NewChange

log = logging.getLogger("notirouter.reconcile")
MAX_REPORTED_IDS = 100
DEFAULT_KEEP = 86_400.0


def process_holder() -> str:
    """This process as a lease holder: host and pid, and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def reconcile_hook(enricher: str) -> str:
    """The hook name reconciled events are stored under (no hook receives webhooks by it)."""
    return f"reconcile:{enricher}"


class ChangeKeeping:
    """How long change keys must be kept: the longest lookback asked for (at least a day)."""

    def __init__(self) -> None:
        self.seconds = DEFAULT_KEEP

    def at_least(self, seconds: float) -> None:
        """Keep keys for ``seconds`` or more."""
        self.seconds = max(self.seconds, seconds)


class QueueChangeFeed:
    """One enricher's feed: streams, lease, commits and reports."""

    def __init__(
        self,
        enricher: str,
        ledger: ChangeLedger,
        metrics: Metrics,
        operations: OperationsEmitter,
        keeping: ChangeKeeping,
        holder: str,
    ) -> None:
        self.enricher = enricher
        self.ledger = ledger
        self.metrics = metrics
        self.operations = operations
        self.keeping = keeping
        self.holder = holder

    def _stream(self, stream: str) -> str:
        return f"{self.enricher}:{stream}"

    async def hold(self, stream: str, seconds: float) -> bool:
        """Take or renew this process's lease on ``stream``."""
        return await self.ledger.hold(self._stream(stream), self.holder, seconds)

    async def release(self, stream: str) -> None:
        """Give the lease on ``stream`` up."""
        await self.ledger.release(self._stream(stream), self.holder)

    async def watermark(self, stream: str) -> float | None:
        """Up to when ``stream``'s changes are committed."""
        return await self.ledger.watermark(self._stream(stream))

    async def commit(
        self, stream: str, changes: Sequence[ReconciledChange], watermark: float
    ) -> list[ReconciledChange] | None:
        """Enqueue what was not notified yet and move the watermark (one transaction)."""
        hook = reconcile_hook(self.enricher)
        new = [
            NewChange(
                change.key,
                hook,
                change.source,
                json.dumps(dict(change.event), ensure_ascii=False).encode(),
            )
            for change in changes
        ]
        keys = await self.ledger.commit(self._stream(stream), self.holder, new, watermark)
        if keys is None:
            return None
        enqueued = set(keys)
        return [change for change in changes if change.key in enqueued]

    def recovered(
        self, stream: str, changes: Sequence[ReconciledChange], *, catch_up: bool
    ) -> None:
        """Log, count and report changes no webhook delivered."""
        if not changes:
            return
        labels = [change.label for change in changes]
        self.metrics.reconcile_recovered.labels(enricher=self.enricher).inc(len(changes))
        log.warning(
            "enricher %s: reconciliation %s %d change%s no webhook delivered (%s): %s%s",
            self.enricher,
            "caught up on" if catch_up else "found",
            len(changes),
            "" if len(changes) == 1 else "s",
            stream,
            ", ".join(labels[:20]),
            " ..." if len(labels) > 20 else "",
            extra={"enricher": self.enricher, "recovered": len(changes)},
        )
        self.operations.emit(
            OperationalAction.RECONCILE_RECOVERED,
            self.enricher,
            enricher=self.enricher,
            count=len(changes),
            ids=labels[:MAX_REPORTED_IDS],
            stream=stream,
            catch_up=catch_up,
            detail=f"{len(changes)} alert change{'s' * (len(changes) != 1)} recovered by "
            f"reconciliation ({'after downtime' if catch_up else 'missed by webhook'})",
        )

    def keep_changes(self, seconds: float) -> None:
        """Keep change keys at least ``seconds``."""
        self.keeping.at_least(seconds)
