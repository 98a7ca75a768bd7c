"""The neutral Message: built once per (event, route), rendered by every sink.

A grouped route sends a :class:`Digest` of several messages as one Message (README "Storm
control"): its title, text and facts already say everything, so a sink that knows nothing of
digests delivers a readable one; ``Message.digest`` carries the structure for a sink that
renders digests natively.

A Message holds *plain text*. Templates from the configuration are trusted, values from events
are not, and neither carries markup: each sink escapes every field for its own markup, so an
attacker-controlled title can never become a live link or a mention.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


class DigestItem(BaseModel):
    """One message of a digest, as one line: title, severity, status if known, link."""

    model_config = ConfigDict(frozen=True)

    title: str
    severity: Severity = Severity.INFO
    status: str | None = None
    link: str | None = None
    event_id: str = ""


class Digest(BaseModel):
    """What one group gathered since its last message (plain, untrusted text like any field).

    ``count`` counts every message gathered; ``items`` lists the first ``max_items`` of them
    (oldest first) and ``more`` is how many were left out (``count == len(items) + more``).
    ``more_link`` is a link shared by every left-out message, when they have one in common.
    ``event_ids`` names the event of every message, listed or not, so none is out of reach.
    """

    model_config = ConfigDict(frozen=True)

    route: str
    group: tuple[Fact, ...] = ()
    count: int
    severity: Severity = Severity.INFO
    items: tuple[DigestItem, ...] = ()
    more: int = 0
    more_link: str | None = None
    event_ids: tuple[str, ...] = ()

    def line(self, item: DigestItem) -> str:
        """The default plain-text line of ``item``: ``[HIGH] title · status · link``."""
        parts = [f"[{item.severity.label}] {item.title}"]
        if item.status:
            parts.append(item.status)
        if item.link:
            parts.append(item.link)
        return " · ".join(parts)

    def more_line(self) -> str | None:
        """``and N more`` (with the shared link, if any), or ``None`` when none was left out."""
        if not self.more:
            return None
        return f"and {self.more} more" + (f": {self.more_link}" if self.more_link else "")

    def title(self) -> str:
        """The default title: the count, the highest severity and the group's values."""
        noun = "notification" if self.count == 1 else "notifications"
        title = f"{self.count} {noun} on {self.route}, highest {self.severity.label}"
        values = ", ".join(fact.value for fact in self.group if fact.value)
        return f"{title}: {values}" if values else title

    def text(self) -> str:
        """The default text: one line per listed item, then ``and N more``."""
        return self._text(len(self.items))

    def text_within(self, fits: Callable[[str], bool]) -> str | None:
        """The default text cut to whole lines that ``fits`` accepts, ``and N more`` counting
        every item cut (``None`` if not even that fits): a sink's limit never hides the count.
        """
        if fits(self._text(len(self.items))):
            return self._text(len(self.items))
        if not fits(self._text(0)):
            return None
        low, high = 0, len(self.items)  # fits(low) holds, fits(high) does not
        while high - low > 1:
            middle = (low + high) // 2
            if fits(self._text(middle)):
                low = middle
            else:
                high = middle
        return self._text(low)

    def _text(self, listed: int) -> str:
        lines = [f"- {self.line(item)}" for item in self.items[:listed]]
        if listed == len(self.items):
            more = self.more_line()
        else:  # the shared link was of the items left out at first: not of these
            more = f"and {self.more + len(self.items) - listed} more"
        if more is not None:
            lines.append(more)
        return "\n".join(lines)


CHANGED_FACT = "Changed"
"""The fact that says what an update changed (``status Pending → Acknowledged; urgency → 80``)."""


def describe_change(label: str, old: str, new: str) -> str:
    """One change as a reader sees it: ``status Pending → Acknowledged``.

    ``old`` empty (not known) or equal to ``new`` gives ``status → Acknowledged``. Shared by
    the formatters' update messages and the core's ``notify_on`` (README "Storm control"), so
    every message says a change the same way.
    """
    if old and old != new:
        return f"{label} {old} → {new}"
    return f"{label} → {new}"


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
    action_target: str | None = Field(
        default=None,
        description="The id of the alert that chat actions on this message act on: a sink "
        "with ``actions`` configured shows its buttons (acknowledge, reject, comment).",
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
    digest: Digest | None = Field(
        default=None, description="Set when this message is a digest of a grouped route."
    )
    event: dict[str, Any] = Field(default_factory=dict)
    enrichment: dict[str, Any] = Field(default_factory=dict)

    def with_changes(self, changes: Sequence[str]) -> Message:
        """This message saying ``changes`` (from :func:`describe_change`) in its
        :data:`CHANGED_FACT`, first among the facts (one the formatter set is replaced)."""
        if not changes:
            return self
        kept = tuple(fact for fact in self.facts if fact.name != CHANGED_FACT)
        changed = Fact(name=CHANGED_FACT, value="; ".join(changes))
        return self.model_copy(update={"facts": (changed, *kept)})

    def summary(self) -> dict[str, Any]:
        """The message without the event and enrichment data (what a human reads)."""
        hidden = {"event", "enrichment", "update_of", "reply_to"}
        return self.model_dump(mode="json", exclude=hidden)
