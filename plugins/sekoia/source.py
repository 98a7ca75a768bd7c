"""The ``sekoia`` source: Sekoia.io webhook notifications (version 2 events).

The body is ``{"type", "action", "attributes", "metadata"}``. Known (type, action) pairs get a
typed model (alert, alert-comment, case, content-proposal); anything else, or a known pair whose
attributes do not fit the typed model, becomes a generic :class:`SekoiaEvent`. A Sekoia.io event
is never rejected over the shape of its ``attributes``: Sekoia.io says more types will come, and
an alert refused with a 422 would be lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from notirouter import Event, Source, hookimpl

log = logging.getLogger("notirouter.plugins.sekoia")


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


class SekoiaEventBase(Event):
    """What every Sekoia.io event has: ``metadata``, and ``attributes`` defined by subclasses.

    Template data holds only the keys the sender actually sent (no ``null`` for absent optional
    fields), so a forwarded event looks like the one received.
    """

    metadata: SekoiaMetadata = Field(default_factory=SekoiaMetadata)

    def community(self) -> str | None:
        """``metadata.community_uuid``: the community (tenant) the event concerns."""
        uuid = self.metadata.community_uuid
        return uuid.strip().lower() if isinstance(uuid, str) and uuid.strip() else None

    def attribute_data(self) -> dict[str, Any]:
        """``attributes`` as plain JSON data, whatever the model."""
        attributes = getattr(self, "attributes", None)
        if isinstance(attributes, BaseModel):
            return attributes.model_dump(mode="json", exclude_unset=True)
        return dict(attributes) if isinstance(attributes, dict) else {}

    def template_data(self) -> dict[str, Any]:
        """The event as sent, as JSON data, plus ``updated`` (``{}`` when nothing is listed).

        ``updated`` is exposed for every Sekoia.io event, typed or generic: an ``alert``/
        ``updated`` event whose attributes do not fit the typed model (say ``"similar": "150+"``)
        falls back to :class:`SekoiaEvent`, and a route's ``when: updated.status_name == ...``
        must still see the change.
        """
        data = self.model_dump(mode="json", by_alias=True, exclude_unset=True)
        attributes = data.get("attributes")
        updated = attributes.get("updated") if isinstance(attributes, dict) else None
        data["updated"] = updated if isinstance(updated, dict) else {}
        return data


class SekoiaEvent(SekoiaEventBase):
    """A Sekoia.io event of a type or action without a typed model: attributes as a dict."""

    attributes: dict[str, Any] = Field(default_factory=dict)


class _Attributes(BaseModel):
    """Attributes are lenient: every field optional, unknown keys kept."""

    model_config = ConfigDict(extra="allow")


class AlertAttributes(_Attributes):
    """``attributes`` of ``alert`` events.

    The webhook documents only ``uuid`` and ``short_id``; Sekoia.io's LiveAPI events of the same
    format also carry a summary (``status_name``, ``urgency_current_value``, ``rule_name``...),
    used when the Alert API cannot be reached. ``updated`` (``alert``/``updated`` only) holds
    the changed fields, e.g. ``{"status": "<uuid>", "status_name": "Acknowledged"}``.
    """

    uuid: str | None = None
    short_id: str | None = None
    updated: dict[str, Any] | None = None
    title: str | None = None
    status_name: str | None = None
    status_uuid: str | None = None
    urgency_current_value: float | None = None
    rule_name: str | None = None
    rule_uuid: str | None = None
    entity_name: str | None = None
    entity_uuid: str | None = None
    alert_type_category: str | None = None
    alert_type_value: str | None = None
    similar: int | None = None
    created_at: int | float | str | None = None
    first_seen_at: int | float | str | None = None
    last_seen_at: int | float | str | None = None


class AlertCommentAttributes(_Attributes):
    """``attributes`` of ``alert-comment`` events: the comment and the alert it belongs to."""

    uuid: str | None = None
    alert_uuid: str | None = None
    alert_short_id: str | None = None
    content: str | None = None
    created_by: str | None = None
    created_by_type: str | None = None


class CaseAttributes(_Attributes):
    """``attributes`` of ``case`` events; ``updated`` lists what changed.

    For ``alerts-updated``, ``updated`` holds ``added_alerts_uuid`` and ``deleted_alerts_uuid``.
    Case timestamps are ISO strings (sometimes without a timezone: read as UTC).
    """

    uuid: str | None = None
    short_id: str | None = None
    title: str | None = None
    priority: str | None = None
    manual: bool | None = None
    created_at: str | None = None
    custom_priority_uuid: str | None = None
    updated: dict[str, Any] | None = None


class ContentProposalAttributes(_Attributes):
    """``attributes`` of ``content-proposal`` (report) events: undocumented, kept as sent."""

    uuid: str | None = None


class AlertEvent(SekoiaEventBase):
    """``alert`` created, updated or deleted."""

    type: Literal["alert"]
    action: Literal["created", "updated", "deleted"]
    attributes: AlertAttributes = Field(default_factory=AlertAttributes)


class AlertCommentEvent(SekoiaEventBase):
    """``alert-comment`` created (a comment was added to an alert)."""

    type: Literal["alert-comment"]
    action: Literal["created"]
    attributes: AlertCommentAttributes = Field(default_factory=AlertCommentAttributes)


class CaseEvent(SekoiaEventBase):
    """``case`` created, updated, or alerts-updated (alerts added to or removed from it)."""

    type: Literal["case"]
    action: Literal["created", "updated", "alerts-updated"]
    attributes: CaseAttributes = Field(default_factory=CaseAttributes)


class ContentProposalEvent(SekoiaEventBase):
    """``content-proposal``: a report is available (any action; the action is undocumented)."""

    type: Literal["content-proposal"]
    attributes: ContentProposalAttributes = Field(default_factory=ContentProposalAttributes)


TYPED_EVENTS: dict[str, tuple[type[SekoiaEventBase], frozenset[str] | None]] = {
    "alert": (AlertEvent, frozenset({"created", "updated", "deleted"})),
    "alert-comment": (AlertCommentEvent, frozenset({"created"})),
    "case": (CaseEvent, frozenset({"created", "updated", "alerts-updated"})),
    "content-proposal": (ContentProposalEvent, None),
}
"""Event type -> (model, the actions it covers; ``None`` for any)."""


def parse_event(payload: dict[str, Any]) -> SekoiaEventBase:
    """The typed event for ``payload``, else a generic :class:`SekoiaEvent`.

    Raises pydantic's ``ValidationError`` only when the envelope itself is invalid (no
    ``type``/``action``, wrong metadata types), never over the shape of ``attributes``.
    """
    generic = SekoiaEvent.model_validate(payload)
    typed = TYPED_EVENTS.get(generic.type)
    if typed is None or (typed[1] is not None and generic.action not in typed[1]):
        return generic
    try:
        return typed[0].model_validate(payload)
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors()[:5])
        log.info("%s/%s event kept as generic: unexpected %s", generic.type, generic.action, fields)
        return generic


class SekoiaSource(Source):
    """Parses Sekoia.io notifications; dedupes on ``metadata.uuid`` when the event has one."""

    type_name = "sekoia"

    def parse(self, payload: dict[str, Any]) -> Event:
        """Validate the body as a typed Sekoia.io event (see :func:`parse_event`)."""
        return parse_event(payload)

    def dedupe_key(self, event: Event, body: bytes) -> str:
        """``metadata.uuid`` (a per-event id) when present, else a digest of the body."""
        if isinstance(event, SekoiaEventBase) and event.metadata.uuid:
            return "sekoia:" + event.metadata.uuid
        return super().dedupe_key(event, body)


@hookimpl
def register_sources(register: Callable[[type[Source]], None]) -> None:
    """Provide the ``sekoia`` source."""
    register(SekoiaSource)
