"""What a Sekoia.io message shows, read from the API data or, failing that, the webhook event.

The Alert API is the reference; when it could not be reached, the webhook's own attributes
(``status_name``, ``urgency_current_value``, ``rule_name``... when Sekoia.io sends them) fill
in. Every value read here is untrusted plain text: the messages never add markup to it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from notirouter import describe_change, truncate

from .places import valid_short_id, valid_uuid

MAX_VALUE_CHARS = 300
MAX_TEXT_CHARS = 100_000
"""A bound on a multi-line text (details, a comment), far above what any sink shows: each
sink cuts at its own service's limit, with the truncation marker."""
URGENCY_KEYS = ("dynamic_urgency_value", "urgency_current_value", "urgency_value", "urgency")


def dig(data: Any, *path: str) -> Any:
    """``data[path[0]][path[1]]...``, or ``None`` where anything is missing."""
    for key in path:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def as_mapping(value: Any) -> dict[str, Any]:
    """``value`` if it is a mapping, else ``{}``."""
    return dict(value) if isinstance(value, Mapping) else {}


def iso_time(value: Any) -> str:
    """Unix seconds or an ISO string as one UTC form, ``2024-12-15T12:29:08Z``.

    Alerts give ``created_at`` in Unix seconds and ``first_seen_at`` as ISO text; cases give
    ISO text sometimes without a timezone (read as UTC). Unreadable values are shown as they are.
    """
    if value is None or value == "" or isinstance(value, bool):
        return ""
    try:
        if isinstance(value, int | float):
            moment = datetime.fromtimestamp(value, tz=UTC)
        else:
            moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        return short(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def number(value: Any) -> str:
    """A number without a useless ``.0``; anything else as short text."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return short(value)


def short(value: Any, limit: int = MAX_VALUE_CHARS) -> str:
    """A value as one line of text: strings as they are, lists joined, objects as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        text = value
    elif isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        text = ", ".join(str(v) for v in value)
    elif isinstance(value, dict | list):
        text = json.dumps(value, ensure_ascii=False, default=str)
    else:
        text = str(value)
    return truncate(" ".join(text.split()), limit)


_LINE_BREAK = re.compile(r"\r\n?|[\x85\u2028\u2029]")  # other controls: revealed later
_BLANK_LINES = re.compile(r"\n{3,}")


def paragraphs(value: Any, limit: int = MAX_TEXT_CHARS) -> str:
    """A multi-line text with its paragraphs and line breaks kept, in one form.

    Every kind of line break becomes ``\\n``, trailing spaces go, runs of blank lines become
    one; indentation and tabs stay (a command line, a stack trace). Sinks escape it and cut it
    at their service's limit; ``limit`` only bounds memory.
    """
    if value is None:
        return ""
    if not isinstance(value, str):
        return short(value, limit)
    lines = [line.rstrip() for line in _LINE_BREAK.sub("\n", value).split("\n")]
    text = _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip("\n")
    return truncate(text, limit)


def urgency_number(value: Any) -> float | None:
    """A 0-100 urgency from a number, a numeric string, or an urgency object."""
    if isinstance(value, Mapping):
        value = value.get("current_value", value.get("value"))
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


@dataclass(frozen=True, slots=True)
class AlertView:
    """An alert as the messages show it; empty strings where nothing is known."""

    uuid: str
    short_id: str
    title: str
    urgency: float | None
    urgency_label: str
    status: str
    rule: str
    entity: str
    alert_type: str
    source: str
    target: str
    first_seen: str
    last_seen: str
    occurrences: str
    details: str

    @property
    def urgency_text(self) -> str:
        """``80 (Major)``, ``80`` or ``Major``."""
        value = number(self.urgency) if self.urgency is not None else ""
        if value and self.urgency_label:
            return f"{value} ({self.urgency_label})"
        return value or self.urgency_label

    @property
    def name(self) -> str:
        """The alert's title, else its short id, else ``""``."""
        return self.title or self.short_id


def alert_view(alert: Mapping[str, Any] | None, attributes: Mapping[str, Any]) -> AlertView:
    """Read ``alert`` (from the API) with the webhook ``attributes`` as fallback."""
    api = as_mapping(alert)
    hook = attributes

    def pick(api_value: Any, hook_key: str) -> Any:
        return api_value if api_value not in (None, "") else hook.get(hook_key)

    category = pick(dig(api, "alert_type", "category"), "alert_type_category")
    kind = pick(dig(api, "alert_type", "value"), "alert_type_value")
    urgency = urgency_number(api.get("urgency")) if api else None
    if urgency is None:
        urgency = urgency_number(hook.get("urgency_current_value"))
    similar = pick(api.get("similar"), "similar")
    return AlertView(
        # Ids from the webhook are shown only when well formed (they are attacker-controlled).
        uuid=short(api.get("uuid") or valid_uuid(hook.get("uuid"))),
        short_id=short(api.get("short_id") or valid_short_id(hook.get("short_id"))),
        title=short(pick(api.get("title"), "title")),
        urgency=urgency,
        urgency_label=short(dig(api, "urgency", "display")),
        status=short(pick(dig(api, "status", "name"), "status_name")),
        rule=short(pick(dig(api, "rule", "name"), "rule_name")),
        entity=short(pick(dig(api, "entity", "name"), "entity_name")),
        alert_type=" / ".join(short(v) for v in (category, kind) if v),
        source=short(api.get("source")),
        target=short(api.get("target")),
        first_seen=iso_time(pick(api.get("first_seen_at"), "first_seen_at")),
        last_seen=iso_time(pick(api.get("last_seen_at"), "last_seen_at")),
        occurrences=number(similar) if similar is not None else "",
        details=paragraphs(api.get("details")),
    )


def titled(prefix: str, name: str) -> str:
    """``prefix: name``, or just ``prefix`` when the name is unknown."""
    return f"{prefix}: {name}" if name else prefix


def _arrow(label: str, old: Any, new: Any) -> str:
    return describe_change(label, number(old), number(new))


def alert_changes(
    updated: Mapping[str, Any],
    alert: Mapping[str, Any] | None,
    previous: Mapping[str, Any] | None,
) -> list[str]:
    """What an ``alert``/``updated`` event changed, e.g. ``status → Acknowledged``.

    The event lists only new values; old ones come from ``previous`` (the copy fetched before)
    when it is known. Status ids are shown by name (from the event or the fetched alert).
    """
    changes: list[str] = []
    done: set[str] = set()
    if "status_name" in updated or "status" in updated or "status_uuid" in updated:
        name = updated.get("status_name") or dig(alert, "status", "name")
        name = name or updated.get("status") or updated.get("status_uuid")
        changes.append(_arrow("status", dig(previous, "status", "name"), name))
        done |= {"status", "status_name", "status_uuid"}
    for key in URGENCY_KEYS:
        if key in updated:
            new = urgency_number(updated[key])
            text = _arrow("urgency", urgency_number(dig(previous, "urgency")), new)
            label = dig(alert, "urgency", "display")
            if label and urgency_number(dig(alert, "urgency")) == new:
                text += f" ({short(label)})"
            changes.append(text)
            done.update(URGENCY_KEYS)
            break
    if "similar" in updated:
        changes.append(_arrow("occurrences", dig(previous, "similar"), updated["similar"]))
        done.add("similar")
    for key, value in updated.items():
        if key not in done:
            changes.append(_arrow(key.replace("_", " "), None, short(value)))
    return changes


def case_changes(updated: Mapping[str, Any], case: Mapping[str, Any] | None) -> list[str]:
    """What a ``case`` event changed; ids are shown by name when the fetched case has it."""
    named = {
        "status_uuid": ("status", dig(case, "custom_status", "label") or dig(case, "status")),
        "custom_status_uuid": ("status", dig(case, "custom_status", "label")),
        "custom_priority_uuid": ("priority", dig(case, "custom_priority", "label")),
        "verdict_uuid": ("verdict", dig(case, "verdict", "label")),
    }
    changes: list[str] = []
    for key, value in updated.items():
        if key in ("added_alerts_uuid", "deleted_alerts_uuid"):
            continue
        if key == "description":
            changes.append("description changed")
        elif key in named:
            label, name = named[key]
            changes.append(f"{label} → {short(name or value)}")
        elif key == "assignees" and isinstance(value, list):
            changes.append(f"assignees → {len(value)}")
        else:
            changes.append(f"{key.replace('_', ' ')} → {short(value)}")
    return changes


_THREAD_ID = re.compile(r"[A-Za-z0-9-]{1,80}")


def thread_key(*candidates: Any) -> str | None:
    """The first candidate that is a plain id (UUID or short id), for threading messages.

    Email sinks put the key into headers: a crafted value must not get there.
    """
    for candidate in candidates:
        if isinstance(candidate, str) and _THREAD_ID.fullmatch(candidate):
            return candidate
    return None


def unavailable_line(variables: Mapping[str, Any], fetched: str) -> str | None:
    """``Details unavailable: <why>`` when the ``fetched`` object is not in ``variables``."""
    if isinstance(variables.get(fetched), Mapping):
        return None
    errors = variables.get("enrichment_errors")
    reasons = sorted({short(r) for r in errors.values()}) if isinstance(errors, Mapping) else []
    if reasons:
        return "Details unavailable: " + "; ".join(reasons)
    return "Details unavailable: not fetched from the Sekoia.io API."
