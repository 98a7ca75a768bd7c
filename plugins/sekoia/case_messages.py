"""Default messages for Sekoia.io cases, reports (content proposals) and unknown event types."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from notirouter import Fact, Message, Severity

from .source import SekoiaEventBase
from .views import (
    as_mapping,
    case_changes,
    dig,
    iso_time,
    paragraphs,
    short,
    thread_key,
    unavailable_line,
)

MAX_LISTED_ALERTS = 10
MAX_RAW_FACTS = 20
PRIORITY_SEVERITY = {
    "low": Severity.LOW,
    "medium": Severity.MEDIUM,
    "high": Severity.HIGH,
    "critical": Severity.CRITICAL,
}


def _listed(values: Any) -> str:
    items = [short(v) for v in values] if isinstance(values, list) else []
    more = len(items) - MAX_LISTED_ALERTS
    text = ", ".join(items[:MAX_LISTED_ALERTS])
    return text + (f" and {more} more" if more > 0 else "")


def case_message(action: str, attributes: dict[str, Any], variables: Mapping[str, Any]) -> Message:
    """Case created, updated (what changed) or alerts-updated (alerts added or removed)."""
    case = as_mapping(variables.get("case"))

    def pick(key: str) -> Any:
        value = case.get(key)
        return value if value not in (None, "") else attributes.get(key)

    short_id = short(pick("short_id"))
    name = short(pick("title")) or short_id or "case"
    priority = short(dig(case, "custom_priority", "label") or pick("priority"))
    status = short(dig(case, "custom_status", "label") or case.get("status"))
    manual = pick("manual")
    mode = "" if manual is None else ("manual" if manual else "automatic")
    alerts = case.get("number_of_alerts")
    facts = [
        ("Priority", priority),
        ("Status", status),
        ("Alerts", short(alerts) if alerts is not None else ""),
        ("Created", iso_time(pick("created_at"))),
        ("Mode", mode),
        ("Case", short_id),
    ]
    missing = unavailable_line(variables, "case")
    updated = as_mapping(attributes.get("updated"))
    lead: list[tuple[str, str]] = []
    if action == "created":
        title = f"New case: {name}"
        text = "\n".join(filter(None, [paragraphs(case.get("description")), missing]))
    elif action == "alerts-updated":
        added = updated.get("added_alerts_uuid")
        removed = updated.get("deleted_alerts_uuid")
        counts = []
        if isinstance(added, list) and added:
            counts.append(f"{len(added)} alert{'s' * (len(added) > 1)} added")
        if isinstance(removed, list) and removed:
            counts.append(f"{len(removed)} alert{'s' * (len(removed) > 1)} removed")
        summary = ", ".join(counts) or "alerts changed"
        title = f"Case alerts updated: {name}"
        text = "\n".join(filter(None, [summary[0].upper() + summary[1:] + ".", missing]))
        lead = [("Added alerts", _listed(added)), ("Removed alerts", _listed(removed))]
    else:
        changes = "; ".join(case_changes(updated, case)) or "not specified by Sekoia.io"
        verb = "updated" if action == "updated" else short(action, 60)
        title = f"Case {verb}: {name}"
        text = "\n".join(filter(None, [f"Changed: {changes}.", missing]))
        lead = [("Changed", changes)]
    return Message(
        title=title,
        text=text,
        severity=PRIORITY_SEVERITY.get(priority.lower(), Severity.MEDIUM),
        link=dig(variables, "sekoia", "case_url"),
        link_label="Open case in Sekoia.io",
        facts=tuple(Fact(name=n, value=v) for n, v in [*lead, *facts] if v),
        thread_key=thread_key(pick("uuid"), short_id),
    )


def _raw_facts(attributes: Mapping[str, Any]) -> list[Fact]:
    """Attributes as facts, nested objects one level deep (``updated.status``)."""
    facts: list[Fact] = []
    for key, value in attributes.items():
        if isinstance(value, Mapping) and value:
            facts.extend(Fact(name=f"{key}.{k}", value=short(v)) for k, v in value.items())
        else:
            facts.append(Fact(name=str(key), value=short(value)))
    return [f for f in facts if f.value][:MAX_RAW_FACTS]


def report_message(
    action: str, attributes: dict[str, Any], variables: Mapping[str, Any]
) -> Message:
    """A report (content proposal): its name if any, its attributes, a link to a STIX object."""
    name = short(attributes.get("name") or attributes.get("title"))
    what = "Report available" if action in ("created", "merged") else f"Report {short(action, 60)}"
    return Message(
        title=f"{what}: {name}" if name else f"{what} in Sekoia.io",
        text="A report is available in the Sekoia.io Intelligence Center.",
        severity=Severity.INFO,
        link=dig(variables, "sekoia", "object_url"),
        link_label="Open in Sekoia.io",
        facts=tuple(_raw_facts(attributes)),
        thread_key=thread_key(attributes.get("uuid")),
    )


def other_message(
    event: SekoiaEventBase, attributes: dict[str, Any], variables: Mapping[str, Any]
) -> Message:
    """An event type this version does not know: type, action and the raw attributes."""
    facts = [
        Fact(name="Type", value=short(event.type)),
        Fact(name="Action", value=short(event.action)),
    ]
    if event.metadata.community_uuid:
        facts.append(Fact(name="Community", value=short(event.metadata.community_uuid)))
    return Message(
        title=f"Sekoia.io {short(event.type, 60)} {short(event.action, 60)}",
        text="An event of a type notirouter has no dedicated message for.",
        severity=Severity.INFO,
        link=dig(variables, "sekoia", "app_url"),
        link_label="Open Sekoia.io",
        facts=(*facts, *_raw_facts(attributes)),
        thread_key=thread_key(attributes.get("uuid")),
    )
