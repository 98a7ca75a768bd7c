"""A route's ``active:`` / ``active_outside:`` and ``bypass:`` (README "Time windows and quiet
hours"): whether a message goes now or is held until the route is active again.

A held message joins the route's window group in the queue's group store (kind
:data:`WINDOW_KIND`), due at the instant the route becomes active: the flusher then sends what
the group holds as one digest (a lone message as itself). Nothing held is lost: the group is
in the queue, survives a restart, and the routing record says until when it was held.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from notirouter.api.message import Message
from notirouter.api.templating import TemplateRenderError
from notirouter.queue.records import NewGroupItem
from notirouter.routing.time_windows import TimeWindow

WINDOW_KIND = "window"
DEFAULT_MAX_ITEMS = 50
Condition = Any  # Callable[[Mapping[str, Any]], bool], as routing.table has it


@dataclass(frozen=True)
class WindowDecision:
    """Held or not, why, and until when (epoch seconds) if held."""

    window: str
    held: bool
    reason: str
    until: float | None = None

    def record(self) -> dict[str, Any]:
        """The ``window`` entry of the routing record."""
        entry: dict[str, Any] = {"name": self.window, "held": self.held, "reason": self.reason}
        if self.until is not None:
            entry["until"] = iso(self.until)
        return entry


@dataclass(frozen=True)
class WindowRule:
    """A compiled ``active`` (``outside``: ``active_outside``) with its ``bypass``."""

    window: TimeWindow
    outside: bool = False
    bypass_source: str | None = None
    bypass: Condition | None = None

    def active(self, now: float) -> bool:
        """Whether the route delivers at ``now``."""
        return self.window.is_open(now) != self.outside

    def decide(self, variables: Mapping[str, Any], now: float) -> WindowDecision:
        """Deliver now (active, or bypassed) or hold until the route is active again.

        A ``bypass`` that cannot be evaluated does not bypass: the message is held and still
        goes out when the route becomes active.
        """
        name = self.window.name
        where = "outside" if self.outside else "inside"
        if self.active(now):
            return WindowDecision(name, False, f"active: {where} window {name}")
        if self.bypass is not None:
            try:
                if self.bypass(variables):
                    return WindowDecision(name, False, f"bypass is true: {self.bypass_source}")
            except (TemplateRenderError, TypeError, ValueError):
                pass
        until = self.window.next_change(now, opening=not self.outside)
        if until is None:
            # Never active again (a window that is always open, used with active_outside):
            # holding would be losing it.
            return WindowDecision(name, False, f"window {name} never changes: sent at once")
        return WindowDecision(
            name, True, f"held: not {where} window {name} until {iso(until)}", until
        )


def window_item(
    route: str,
    sinks: tuple[str, ...],
    message: Message,
    message_json: str,
    decision: WindowDecision,
    now: float,
    max_items: int = DEFAULT_MAX_ITEMS,
) -> NewGroupItem:
    """What the group store holds for a message held by ``decision``."""
    assert decision.until is not None
    return NewGroupItem(
        kind=WINDOW_KIND,
        route=route,
        group_key=json.dumps([["held outside its window", decision.window]]),
        sinks=sinks,
        wait=max(0.0, decision.until - now),
        # Due again at once after the release: found empty then, the group is forgotten, so
        # the next closed period starts a group due at its own opening.
        interval=0.0,
        max_items=max_items,
        message_json=message_json,
        severity=message.severity.rank,
        link=message.link,
    )


def iso(seconds: float) -> str:
    """Epoch seconds as UTC ISO 8601 (``2026-03-29T06:00:00Z``)."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")[:-6] + "Z"
