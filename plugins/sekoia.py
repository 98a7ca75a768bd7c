"""The ``sekoia`` source: Sekoia.io webhook notifications (version 2 events).

The body is ``{"type", "action", "attributes", "metadata"}``. Parsing is lenient where Sekoia.io
may evolve (extra keys kept, any type and action accepted) and strict where we rely on a shape.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from notirouter import Event, Source, hookimpl


class SekoiaMetadata(BaseModel):
    """``metadata`` of a Sekoia.io event.

    The docs' field table says ``metadata.created`` but every example uses ``created_at``:
    both are accepted, ``created_at`` first.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    version: int | str | None = None
    uuid: str | None = None
    created_at: datetime | None = Field(
        default=None, validation_alias=AliasChoices("created_at", "created")
    )
    community_uuid: str | None = None
    avatar_uuid: str | None = None
    user_uuid: str | None = None
    permissions: list[Any] | None = None


class SekoiaEvent(Event):
    """A Sekoia.io webhook event of any type."""

    attributes: dict[str, Any] = Field(default_factory=dict)
    metadata: SekoiaMetadata = Field(default_factory=SekoiaMetadata)


class SekoiaSource(Source):
    """Parses Sekoia.io notifications; dedupes on ``metadata.uuid`` when the event has one."""

    type_name = "sekoia"

    def parse(self, payload: dict[str, Any]) -> Event:
        """Validate the body as a :class:`SekoiaEvent`."""
        return SekoiaEvent.model_validate(payload)

    def dedupe_key(self, event: Event, body: bytes) -> str:
        """``metadata.uuid`` (a per-event id) when present, else a digest of the body."""
        if isinstance(event, SekoiaEvent) and event.metadata.uuid:
            return "sekoia:" + event.metadata.uuid
        return super().dedupe_key(event, body)


@hookimpl
def register_sources(register: Callable[[type[Source]], None]) -> None:
    """Provide the ``sekoia`` source."""
    register(SekoiaSource)
