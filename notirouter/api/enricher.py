"""The enricher plugin API: fetch what a thin webhook event only points at.

An enricher returns variables for ``when`` conditions, templates and formatters (the Sekoia
enricher returns ``{"alert": {...}}``). It does its own bounded retries; when it finally fails it
raises :class:`EnrichmentError` and the notification still goes out with what the event carried.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from notirouter.api.events import Event
from notirouter.api.http import HttpClient
from notirouter.api.reconcile import ChangeFeed


class EnrichmentError(Exception):
    """Enrichment failed for good; the message (safe to show to users) says why.

    ``partial`` holds variables the enricher could still provide (e.g. a link built from the
    ids the event carried), merged into the context so the degraded message stays useful.
    ``reported`` says the enricher already logged this kind of failure its own way (e.g. a
    refused API key, once per period): the core then logs it per event at debug level only.
    """

    def __init__(
        self, message: str, *, partial: Mapping[str, Any] | None = None, reported: bool = False
    ) -> None:
        super().__init__(message)
        self.partial: Mapping[str, Any] = partial or {}
        self.reported = reported


class EnricherOptions(BaseModel):
    """Options every enricher accepts; an enricher's own ``Options`` subclasses this."""

    model_config = ConfigDict(extra="forbid")

    type: str


EnricherHealth = Callable[[bool, str], None]
"""``(available, reason)``: how an enricher tells the core its service went down or came back."""


@dataclass(frozen=True, slots=True)
class EnricherContext:
    """What the core hands an enricher: its configured name, the shared HTTP client, and
    where to report the health of the service it calls (``health``, see :meth:`report_health`).
    """

    name: str
    http: HttpClient
    health: EnricherHealth | None = None

    def report_health(self, available: bool, reason: str = "") -> None:
        """Report that the enricher's service became unavailable (``False``, e.g. a circuit
        breaker opened) or available again (``True``). Call it on changes only; the core
        raises the ``enrichment-down`` / ``enrichment-recovered`` operational events. The
        ``reason`` is shown to users: no secrets in it."""
        if self.health is not None:
            self.health(available, reason)


EnricherOptionsT = TypeVar("EnricherOptionsT", bound=EnricherOptions)


class Enricher(ABC, Generic[EnricherOptionsT]):
    """Base class of every enricher type (``type_name`` and ``Options`` as for sinks)."""

    type_name: ClassVar[str]
    Options: ClassVar[type[EnricherOptions]] = EnricherOptions

    def __init__(self, name: str, options: EnricherOptionsT, context: EnricherContext) -> None:
        self.name = name
        self.options = options
        self.context = context

    def status(self) -> Mapping[str, Any]:
        """What this enricher holds in memory that an operator should see in
        ``notirouter status`` (its cache's size and hit rate, its circuit breaker's state): a
        small JSON-able mapping.

        The default is ``{}``. The core calls it from the event loop every
        ``server.status_interval`` while ``serve`` runs, so it must be cheap and must not block;
        it publishes the result with the process's report, shown under ``processes[].enrichers.
        <name>.plugin``. Strings are redacted against the enricher's own secrets before they are
        stored, but return no secret and no event data in the first place.
        """
        return {}

    async def start(self) -> None:
        """Prepare resources before the first event (optional)."""

    async def aclose(self) -> None:
        """Release resources at shutdown (optional)."""

    def change_key(self, event: Event, variables: Mapping[str, Any]) -> str | None:
        """The key of the outside change ``event`` reports, from its enriched ``variables``
        (``None``: none, the default). An enricher that reconciles returns the key its
        :class:`~notirouter.api.reconcile.ReconciledChange` objects carry for the same
        change, so a change reported by a webhook and by reconciliation is notified once."""
        return None

    async def reconcile(self, feed: ChangeFeed) -> None:
        """Poll the service for changes no webhook delivered, until cancelled (optional).

        Run by ``serve`` (and ``worker``) after :meth:`start`, cancelled before
        :meth:`aclose`; the default returns at once. See :mod:`notirouter.api.reconcile`.
        """

    @abstractmethod
    async def enrich(self, event: Event) -> Mapping[str, Any]:
        """Variables to add to the event's template context; ``{}`` when nothing applies.

        Raise :class:`EnrichmentError` when enrichment failed after the enricher's own retries.
        """
