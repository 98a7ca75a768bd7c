"""A route's ``notify_on:`` compiled: the key and the values compared (README "Storm control").

Per event it gives the :class:`~notirouter.queue.gates.NotifyOnCheck` the queue decides on
(with the values last notified for the key), and, for a message that goes out, the lines that
say what changed, written as every update message writes them
(:func:`~notirouter.api.message.describe_change`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from notirouter.api.message import Message, describe_change
from notirouter.api.templating import TemplateRenderError, Templates
from notirouter.queue.gates import Change, NotifyOnCheck
from notirouter.routing.grouping import shown_value

Value = Callable[[Mapping[str, Any]], Any]
Renderer = Callable[[Mapping[str, Any]], str]
MAX_KEY_CHARS = 500
# Path segments that name a field of a value rather than the value (``status.name``): the
# label a reader sees is the segment before (``status``).
_FIELD_WORDS = frozenset(
    {"name", "display", "value", "current_value", "label", "text", "uuid", "id"}
)


class GateCompileError(ValueError):
    """Part ``where`` of a gate (``key``, or ``changes`` and an index) does not compile."""

    def __init__(self, where: tuple[str | int, ...], reason: str) -> None:
        super().__init__(reason)
        self.where = where


def compile_key(templates: Templates, source: str) -> Renderer:
    """A gate's ``key`` template, compiled (:class:`GateCompileError` at ``("key",)``)."""
    try:
        return templates.compile_template(source)
    except ValueError as exc:
        raise GateCompileError(("key",), str(exc)) from None


def render_key(key: Renderer, variables: Mapping[str, Any]) -> str | None:
    """The key of an event (``None``: empty or not renderable: the gate lets it through)."""
    try:
        rendered = key(variables).strip()
    except TemplateRenderError:
        return None
    return rendered[:MAX_KEY_CHARS] or None


def change_label(expression: str) -> str:
    """What a reader calls the value of ``expression``: ``alert.status.name`` is ``status``."""
    parts = [part for part in expression.replace("[", ".").split(".") if part.isidentifier()]
    while len(parts) > 1 and parts[-1] in _FIELD_WORDS:
        parts.pop()
    if len(parts) > 1:
        parts = parts[1:]  # the root (``alert``, ``event``) says nothing
    label = " ".join(part.replace("_", " ") for part in parts[-2:])
    return label or expression


@dataclass(frozen=True)
class NotifyOn:
    """A compiled ``notify_on:``."""

    key_source: str
    key: Renderer
    changes: tuple[tuple[str, Value], ...]
    retention: float

    @classmethod
    def compile(
        cls, templates: Templates, key: str, changes: Sequence[str], *, retention: float
    ) -> NotifyOn:
        """Compile the key and the expressions; raise :class:`GateCompileError` on failure."""
        compiled: list[tuple[str, Value]] = []
        for index, source in enumerate(changes):
            try:
                compiled.append((source, templates.compile_value(source)))
            except ValueError as exc:
                raise GateCompileError(("changes", index), str(exc)) from None
        return cls(key, compile_key(templates, key), tuple(compiled), retention)

    def check(
        self, variables: Mapping[str, Any], *, enrichment_failed: bool
    ) -> NotifyOnCheck | None:
        """What the queue compares for this event (``None``: no key, so it just notifies).

        A value that cannot be evaluated is unknown; so is a missing one when an enricher of
        the route failed (the data was not fetched, it did not become empty).
        """
        key = render_key(self.key, variables)
        if key is None:
            return None
        values: list[tuple[str, str | None]] = []
        for source, value in self.changes:
            try:
                found = value(variables)
            except TemplateRenderError:
                values.append((source, None))
                continue
            unknown = found is None and enrichment_failed
            values.append((source, None if unknown else shown_value(found)))
        return NotifyOnCheck(key, tuple(values), self.retention)


def describe_changes(changes: Sequence[Change]) -> list[str]:
    """``status Pending → Acknowledged`` for each change."""
    return [describe_change(change_label(expr), old, new) for expr, old, new in changes]


def saying_changes(message: Message, changes: Sequence[Change]) -> Message:
    """``message`` with what changed since the last notification in its Changed fact."""
    return message.with_changes(describe_changes(changes))
