"""The neutral Message: built once per (event, route), rendered by every sink.

A Message holds *plain text*. Templates from the configuration are trusted, values from events
are not, and neither carries markup: each sink escapes every field for its own markup, so an
attacker-controlled title can never become a live link or a mention.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Severity(StrEnum):
    """How loud a notification should be, from ``info`` to ``critical``."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @classmethod
    def from_urgency(cls, value: float) -> Severity:
        """Map a 0-100 urgency (Sekoia.io's ``urgency.current_value``) to a severity.

        Quarters of the scale: <25 low, <50 medium, <75 high, otherwise critical.
        """
        if value < 25:
            return cls.LOW
        if value < 50:
            return cls.MEDIUM
        if value < 75:
            return cls.HIGH
        return cls.CRITICAL

    @property
    def label(self) -> str:
        """The word a reader sees for it, ``INFO`` to ``CRITICAL``, one per severity.

        Sinks show it in text, next to any colour or emoji, so that the severity reads the
        same without colour (a colour-blind reader, a notification, a screen reader, a log).
        """
        return self.value.upper()

    @property
    def rank(self) -> int:
        """Position on the scale, 0 (info) to 4 (critical), for comparisons."""
        return list(Severity).index(self)


class Fact(BaseModel):
    """One labelled value shown as a row (Teams FactSet, Slack field, email table row)."""

    model_config = ConfigDict(frozen=True)

    name: str
    value: str


class Message(BaseModel):
    """What a notification says, independent of where it goes.

    ``event`` and ``enrichment`` carry the data the message was built from, so sinks with a
    payload template (or the webhook sink's default body) can forward everything.
    """

    model_config = ConfigDict(frozen=True)

    title: str
    text: str = ""
    severity: Severity = Severity.INFO
    link: str | None = None
    link_label: str = "Open"
    facts: tuple[Fact, ...] = ()
    thread_key: str | None = Field(
        default=None, description="Stable id of the thing the message is about (e.g. an alert)."
    )
    shows_state: bool = Field(
        default=True,
        description="The message shows the thing's current state (an alert created or "
        "updated), not only an addition to it (a comment): only such a message may replace "
        "the first message of a conversation.",
    )
    update_of: str | None = Field(
        default=None,
        description="Set by the core: the service's id of the conversation's first message, "
        "to edit so that it shows this message.",
    )
    reply_to: str | None = Field(
        default=None,
        description="Set by the core: the service's id of the conversation's first message, "
        "to post this message as a reply under.",
    )
    route: str = ""
    event: dict[str, Any] = Field(default_factory=dict)
    enrichment: dict[str, Any] = Field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The message without the event and enrichment data (what a human reads)."""
        hidden = {"event", "enrichment", "update_of", "reply_to"}
        return self.model_dump(mode="json", exclude=hidden)
