"""The storm-control decisions of a route, for a terminal (``route`` and ``trace``).

Whatever decision keys a route's entry of the routing record holds (``group``, ``storm``,
``community``, ``throttle``, ``notify_on``, ``window``, ``silence``...) are shown the same
generic way, ``key: name=value, ...``, so a new kind of decision shows up without code here.
Values come partly from events: the caller prints them inert.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

MAX_VALUE_CHARS = 300


def decision_lines(decisions: Mapping[str, Any]) -> list[str]:
    """One ``key: value`` line per decision, in stored order."""
    return [f"{key}: {describe(value)}" for key, value in decisions.items()]


def describe(value: Any) -> str:
    """A decision's value in one line: mappings as ``name=value, ...``, lists comma-joined."""
    if isinstance(value, Mapping):
        text = ", ".join(f"{name}={_inner(item)}" for name, item in value.items()) or "-"
    elif isinstance(value, list | tuple):
        text = ", ".join(_inner(item) for item in value) or "-"
    else:
        text = _scalar(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _inner(value: Any) -> str:
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, ensure_ascii=False, default=str, separators=(", ", ": "))
    return _scalar(value)


def _scalar(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
