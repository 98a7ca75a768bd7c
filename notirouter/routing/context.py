"""The per-event context that routing builds: core state kept apart from what enrichers add.

Templates, ``when`` expressions and formatters see one flat mapping (``alert``, ``type``,
``event``, ``enrichment_errors``…). An enricher's variables are merged into it, but they can
never replace what the core put there: a third-party enricher returning ``{"event": …}`` or
``{"enrichment_errors": {}}`` would otherwise change what every route decides and says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from notirouter.api.events import Event

# Names the core owns in the template context, besides the event's own top-level fields.
CORE_NAMES = frozenset(
    {"event", "enrichment", "enrichment_errors", "message", "community", "community_uuid"}
)


@dataclass
class EventContext:
    """What is known about one event while it is routed.

    ``data`` is the event as template data, ``enrichment`` the enrichers' variables (merged in
    the order they were added), ``enrichment_errors`` enricher name -> why it failed, and
    ``refused`` the variable names an enricher tried to set over core state.
    """

    event: Event
    data: dict[str, Any]
    enrichment: dict[str, Any] = field(default_factory=dict)
    enrichment_errors: dict[str, str] = field(default_factory=dict)
    refused: dict[str, tuple[str, ...]] = field(default_factory=dict)
    community_uuid: str | None = None
    community: str | None = None
    """The community's configured name, else its uuid (``None``: the event names none)."""

    @classmethod
    def of(cls, event: Event, community_names: Mapping[str, str] | None = None) -> EventContext:
        """The context before enrichment (``community_names``: uuid -> configured name)."""
        uuid = event.community()
        name = (community_names or {}).get(uuid, uuid) if uuid is not None else None
        return cls(event=event, data=event.template_data(), community_uuid=uuid, community=name)

    @property
    def reserved(self) -> frozenset[str]:
        """Every name an enricher may not set: the core's and the event's top-level fields."""
        return CORE_NAMES | self.data.keys()

    def add(self, enricher: str, values: Mapping[str, Any]) -> None:
        """Merge an enricher's variables, leaving out (and remembering) any reserved name."""
        reserved = self.reserved
        clashes = tuple(sorted(key for key in values if key in reserved))
        if clashes:
            self.refused[enricher] = clashes
        self.enrichment.update((key, value) for key, value in values.items() if key not in reserved)

    def fail(self, enricher: str, reason: str, partial: Mapping[str, Any]) -> None:
        """Record an enricher's failure; its ``partial`` variables are still merged."""
        self.enrichment_errors[enricher] = reason
        self.add(enricher, partial)

    def variables(self) -> dict[str, Any]:
        """The flat template context; core names always hold the core's values."""
        return {
            **self.enrichment,
            **self.data,
            "event": self.data,
            "enrichment": self.enrichment,
            "enrichment_errors": self.enrichment_errors,
            "community": self.community,
            "community_uuid": self.community_uuid,
        }
