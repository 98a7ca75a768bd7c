"""Operational events: what notirouter says about itself, routed like any received event.

They are stored in the queue under the core's own source (``notirouter``) and hook name, so
they are as durable as a webhook and routes match them with ``match: {type: notirouter}``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from notirouter.api.events import Event
from notirouter.api.operations import OPERATIONAL_EVENT_TYPE
from notirouter.api.source import Source


class OperationalEvent(Event):
    """``type: notirouter``; ``subject`` names the sink or enricher it is about (if any).

    Routes and templates see ``event.sink``, ``event.enricher``, ``event.detail``,
    ``event.count``, ``event.suppressed`` (events of the same kind held back by the throttle
    since the last one) and ``event.process`` (which notirouter process noticed).
    """

    type: str = OPERATIONAL_EVENT_TYPE
    subject: str = ""
    sink: str | None = None
    enricher: str | None = None
    detail: str = ""
    count: int = Field(default=0, ge=0)
    suppressed: int = Field(default=0, ge=0)
    process: str = ""
    at: float = 0.0


class OperationalSource(Source):
    """The core's own source: parses the operational events it stored itself."""

    type_name: ClassVar[str] = OPERATIONAL_EVENT_TYPE

    def parse(self, payload: dict[str, Any]) -> Event:
        """Validate a stored operational event."""
        return OperationalEvent.model_validate(payload)
