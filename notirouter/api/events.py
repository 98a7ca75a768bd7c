"""Events: what a source plugin makes of a webhook body.

The core only relies on ``type`` and ``action``; sources subclass :class:`Event` to add typed
fields (Sekoia's ``attributes`` and ``metadata``). Unknown keys are kept (``extra="allow"``) so a
newer sender never loses data on its way through notirouter.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Event(BaseModel):
    """A received event, validated by its source plugin.

    ``type`` and ``action`` drive routing. Everything else is the source's business and reaches
    templates through :meth:`template_data`.
    """

    model_config = ConfigDict(extra="allow")

    type: str = Field(min_length=1, max_length=200)
    action: str = Field(min_length=1, max_length=200)

    def community(self) -> str | None:
        """The uuid of the tenant (Sekoia.io community) this event belongs to, if known.

        Routes match on it (``match: {community: ...}``) and templates see it as
        ``community_uuid`` and ``community`` (its name in ``communities:``). A source whose
        events carry a tenant overrides this; the default knows none.
        """
        return None

    def template_data(self) -> dict[str, Any]:
        """The event as plain JSON data, the way templates and the webhook sink see it."""
        return self.model_dump(mode="json", by_alias=True)
