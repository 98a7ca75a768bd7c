"""The reconciliation plugin API: find, in a service's API, the changes no webhook delivered.

An enricher whose service keeps a list of changes (the Sekoia.io alert list) can poll it:
the core runs :meth:`Enricher.reconcile <notirouter.api.enricher.Enricher.reconcile>` with a
:class:`ChangeFeed`, which stores a durable watermark per stream, leases the polling of each
stream to one process, and enqueues each change as an event unless it was already notified.
The webhook side names the change it reports with
:meth:`Enricher.change_key <notirouter.api.enricher.Enricher.change_key>`: a change reported
by both is notified once, whichever comes first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class ReconciledChange:
    """One change found by polling: ``key`` as :meth:`Enricher.change_key` would name it,
    ``event`` the payload to enqueue (parsed by the source ``source``), ``label`` the id shown
    in the ``reconcile-recovered`` report (e.g. an alert's short id)."""

    key: str
    source: str
    event: Mapping[str, Any]
    label: str


class ChangeFeed(Protocol):
    """What the core gives a reconciling enricher (one feed per enricher).

    A *stream* is one list the enricher polls (e.g. one community); its name is the
    enricher's own, unique within the enricher.
    """

    async def hold(self, stream: str, seconds: float) -> bool:
        """Take or renew this process's lease on polling ``stream``; ``False``: another
        process polls it now (poll again later, it may have stopped)."""
        ...

    async def release(self, stream: str) -> None:
        """Give the lease up (at shutdown), so another process takes over at once."""
        ...

    async def watermark(self, stream: str) -> float | None:
        """Epoch seconds up to which ``stream``'s changes are committed (``None``: never)."""
        ...

    async def commit(
        self, stream: str, changes: Sequence[ReconciledChange], watermark: float
    ) -> list[ReconciledChange] | None:
        """Enqueue the changes not notified yet and move the watermark to ``watermark``, in
        one transaction and only while the lease is held. Returns the changes enqueued
        (``None``: the lease was lost and nothing was written)."""
        ...

    def recovered(
        self, stream: str, changes: Sequence[ReconciledChange], *, catch_up: bool
    ) -> None:
        """Report changes that no webhook had delivered: a log line, the
        ``notirouter_reconcile_recovered_total`` metric and one ``reconcile-recovered``
        operational event with their count and labels (nothing when there are none).
        ``stream`` names where they were found (one stream or several, for one report per
        reading); ``catch_up``: found by the first reading since start."""
        ...

    def keep_changes(self, seconds: float) -> None:
        """Keep notified change keys at least ``seconds`` (the enricher's lookback)."""
        ...
