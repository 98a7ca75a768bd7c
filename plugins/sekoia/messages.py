"""Default messages for Sekoia.io events, through the ``format_message`` hook.

One builder per event type, each reading the enricher's variables (``alert``, ``comment``,
``case``, ``sekoia`` links) and falling back to what the webhook carried. When the details could
not be fetched the message says so on a visible "Details unavailable" line and still links to
the alert. Messages are plain text: sinks escape every field for their own markup.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from notirouter import CHANGED_FACT, Event, Fact, Message, Severity, hookimpl

from .case_messages import case_message, other_message, report_message
from .places import valid_uuid
from .source import SekoiaEventBase
from .views import (
    AlertView,
    alert_changes,
    alert_view,
    as_mapping,
    dig,
    paragraphs,
    short,
    titled,
    unavailable_line,
)
from .views import thread_key as pick_thread_key

Builder = Callable[[str, dict[str, Any], Mapping[str, Any]], Message]


def alert_facts(view: AlertView) -> list[Fact]:
    """The facts shared by alert messages, in reading order, skipping unknown values."""
    route = ""
    if view.source or view.target:
        route = f"{view.source or '-'} → {view.target or '-'}"
    rows = [
        ("Urgency", view.urgency_text),
        ("Status", view.status),
        ("Rule", view.rule),
        ("Entity", view.entity),
        ("Alert type", view.alert_type),
        ("Source → target", route),
        ("First seen", view.first_seen),
        ("Last seen", view.last_seen),
        ("Occurrences", view.occurrences),
        ("Alert", view.short_id),
    ]
    return [Fact(name=name, value=value) for name, value in rows if value]


def _summary(view: AlertView) -> str:
    parts = []
    if view.urgency_text:
        parts.append(f"Urgency {view.urgency_text}")
    if view.status:
        parts.append(f"status {view.status}")
    return ", ".join(parts) + "." if parts else ""


def _lines(*lines: str | None) -> str:
    return "\n".join(line for line in lines if line)


def alert_message(action: str, attributes: dict[str, Any], variables: Mapping[str, Any]) -> Message:
    """Alert created (the full picture), updated (what changed), deleted, or another action."""
    alert = variables.get("alert")
    view = alert_view(alert if isinstance(alert, Mapping) else None, attributes)
    severity = Severity.from_urgency(view.urgency) if view.urgency is not None else Severity.MEDIUM
    common: dict[str, Any] = {
        "severity": severity,
        "link": dig(variables, "sekoia", "alert_url"),
        "link_label": "Open alert in Sekoia.io",
        "thread_key": pick_thread_key(attributes.get("uuid"), view.uuid, view.short_id),
        # Chat actions act on the alert by its uuid (the workflow API takes no short id); a
        # deleted alert has nothing left to act on.
        "action_target": None
        if action == "deleted"
        else valid_uuid(attributes.get("uuid")) or valid_uuid(view.uuid),
    }
    missing = unavailable_line(variables, "alert")
    facts = alert_facts(view)
    if action == "created":
        return Message(
            title=titled("New alert", view.name),
            text=_lines(_summary(view), view.details, missing),
            facts=tuple(facts),
            **common,
        )
    if action == "updated":
        updated = as_mapping(attributes.get("updated"))
        previous = variables.get("previous_alert")
        changes = alert_changes(
            updated,
            alert if isinstance(alert, Mapping) else None,
            previous if isinstance(previous, Mapping) else None,
        )
        changed = "; ".join(changes) or "not specified by Sekoia.io"
        return Message(
            title=titled("Alert updated", view.name),
            text=_lines(f"Changed: {changed}.", _summary(view), missing),
            facts=(Fact(name=CHANGED_FACT, value=changed), *facts),
            **common,
        )
    if action == "deleted":
        common.update(severity=Severity.INFO, link=None)
        return Message(
            title=titled("Alert deleted", view.name),
            text="The alert was deleted in Sekoia.io.",
            facts=tuple(f for f in facts if f.name == "Alert"),
            **common,
        )
    return Message(
        title=titled(f"Alert {short(action, 60)}", view.name),
        text=_lines(_summary(view), missing),
        facts=tuple(facts),
        **common,
    )


def comment_message(
    action: str, attributes: dict[str, Any], variables: Mapping[str, Any]
) -> Message:
    """A comment on an alert: who wrote what, on which alert."""
    alert = variables.get("alert")
    alert_ids = {"uuid": attributes.get("alert_uuid"), "short_id": attributes.get("alert_short_id")}
    view = alert_view(alert if isinstance(alert, Mapping) else None, alert_ids)
    comment = as_mapping(variables.get("comment"))
    content = paragraphs(comment.get("content") or attributes.get("content"))
    author = short(comment.get("author"))
    if not author:
        kind, who = attributes.get("created_by_type"), attributes.get("created_by")
        author = " ".join(short(v) for v in (kind, who) if v)
    verb = "New comment" if action == "created" else f"Comment {short(action, 60)}"
    facts = [("Author", author), ("Alert", view.short_id), ("Urgency", view.urgency_text)]
    facts.append(("Status", view.status))
    return Message(
        title=titled(f"{verb} on alert", view.name),
        text=_lines(content, unavailable_line(variables, "alert")),
        severity=Severity.INFO,
        link=dig(variables, "sekoia", "alert_url"),
        link_label="Open alert in Sekoia.io",
        facts=tuple(Fact(name=name, value=value) for name, value in facts if value),
        # An addition to the alert's conversation, not its state: it never replaces the
        # first message.
        shows_state=False,
        # The alert's uuid, as for the alert's own messages: email threads them together.
        thread_key=pick_thread_key(attributes.get("alert_uuid"), view.uuid, view.short_id),
    )


BUILDERS: dict[str, Builder] = {
    "alert": alert_message,
    "alert-comment": comment_message,
    "case": case_message,
    "content-proposal": report_message,
}


@hookimpl
def format_message(event: Event, variables: Mapping[str, Any]) -> Message | None:
    """The default message for Sekoia.io events; ``None`` for events of other sources."""
    if not isinstance(event, SekoiaEventBase):
        return None
    attributes = event.attribute_data()
    builder = BUILDERS.get(event.type)
    if builder is None:
        return other_message(event, attributes, variables)
    return builder(event.action, attributes, variables)
