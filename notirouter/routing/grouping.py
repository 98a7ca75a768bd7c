"""A route's ``group:`` compiled: which group an event's message joins (README "Storm control").

The ``by`` expressions are compiled once, at load, in the sandboxed template environment; per
event they give the values that name the group. The key is those values as JSON (expression,
value pairs), so it is stable across processes and restarts and the digest can show them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from notirouter.api.message import Fact, Message
from notirouter.api.templating import TemplateRenderError, Templates
from notirouter.queue.records import NewGroupItem

GROUP_KIND = "group"
MAX_VALUE_CHARS = 200  # values come from events: keep keys (and digest titles) bounded
Value = Callable[[Mapping[str, Any]], Any]


class GroupingCompileError(ValueError):
    """Expression ``index`` of ``by`` does not compile (the reason is the message)."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(reason)
        self.index = index


@dataclass(frozen=True)
class Grouping:
    """A compiled ``group:``: the ``by`` expressions, the timers and the digest's size."""

    by: tuple[tuple[str, Value], ...]
    wait: float
    interval: float
    max_items: int

    @classmethod
    def compile(
        cls,
        templates: Templates,
        by: Sequence[str],
        *,
        wait: float,
        interval: float,
        max_items: int,
    ) -> Grouping:
        """Compile ``by``; raise :class:`GroupingCompileError` naming the expression that fails."""
        compiled: list[tuple[str, Value]] = []
        for index, source in enumerate(by):
            try:
                compiled.append((source, templates.compile_value(source)))
            except ValueError as exc:
                raise GroupingCompileError(index, str(exc)) from None
        return cls(tuple(compiled), wait, interval, max_items)

    def key(self, variables: Mapping[str, Any]) -> str:
        """The group of an event: its ``by`` values, as JSON.

        A value that cannot be evaluated counts as empty: the message still joins a group
        (with the other events missing that value) rather than being lost.
        """
        pairs = []
        for source, value in self.by:
            try:
                shown = shown_value(value(variables))
            except TemplateRenderError:
                shown = ""
            pairs.append([source, shown])
        return json.dumps(pairs, ensure_ascii=False, separators=(",", ":"))

    def item(
        self, route: str, sinks: Sequence[str], message: Message, message_json: str, key: str
    ) -> NewGroupItem:
        """What the queue holds for ``message`` in group ``key`` of ``route``."""
        return NewGroupItem(
            kind=GROUP_KIND,
            route=route,
            group_key=key,
            sinks=tuple(sinks),
            wait=self.wait,
            interval=self.interval,
            max_items=self.max_items,
            message_json=message_json,
            severity=message.severity.rank,
            link=message.link,
        )


def group_facts(key: str) -> tuple[Fact, ...]:
    """The ``by`` expressions and values a group key names, for the digest."""
    try:
        pairs = json.loads(key)
        return tuple(Fact(name=str(name), value=str(value)) for name, value in pairs)
    except (ValueError, TypeError):
        return ()


def shown_value(value: Any) -> str:
    """A value as text for keys and comparisons (JSON for non-strings), bounded."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text[:MAX_VALUE_CHARS]
