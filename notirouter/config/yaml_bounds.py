"""Bounds on a config file, checked before any value is built from it.

YAML aliases make a small file stand for a huge tree: 590 bytes of nested anchors expanded to
3 GB, an anchor that contains its own alias recursed until Python gave up, and a 31 MB file
took 42 s and 1.35 GB to load. A config is refused (``file:line:col`` pointing at the cause)
when it is larger than :data:`MAX_CONFIG_BYTES`, nests deeper than :data:`MAX_CONFIG_DEPTH`,
has aliases that add more than :data:`MAX_ALIASED_VALUES` values once expanded, or uses an
alias inside the node it names.

The check walks PyYAML's event stream, which its parser produces without recursion, keeping
only the expanded size and height of each anchor: it costs one pass and no tree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from notirouter.config.errors import ConfigProblem, Position

MAX_CONFIG_BYTES = 1024 * 1024
"""The largest config file read (1 MiB: tens of thousands of lines of routes)."""
MAX_CONFIG_DEPTH = 32
"""How many mappings and lists deep a config may nest, aliases expanded."""
MAX_ALIASED_VALUES = 100_000
"""How many values (scalars, mappings and lists) aliases may add to a config once expanded.

The values written out are bounded by the size of the file; this bounds what aliases make of
them, which no legitimate config needs much of (a shared block of sink options, say)."""


@dataclass
class _Open:
    """A mapping or list being read: its anchor, and its expanded size and height so far."""

    anchor: str | None
    size: int = 1
    height: int = 1


def _position(file: str, mark: Any) -> Position:
    if mark is None:
        return Position(file, 1, 1)
    return Position(file, int(mark.line) + 1, int(mark.column) + 1)


def size_problem(file: str, data: bytes) -> ConfigProblem | None:
    """A problem at the place where ``data`` goes past :data:`MAX_CONFIG_BYTES`, if it does."""
    if len(data) <= MAX_CONFIG_BYTES:
        return None
    head = data[:MAX_CONFIG_BYTES]
    line = head.count(b"\n") + 1
    column = len(head) - (head.rfind(b"\n") + 1) + 1
    return ConfigProblem(
        Position(file, line, column),
        f"the config is larger than {MAX_CONFIG_BYTES} bytes (1 MiB), the most read; "
        "split it or remove unused parts",
    )


def bounds_problem(
    text: str, file: str, loader: type[yaml.SafeLoader] = yaml.SafeLoader
) -> ConfigProblem | None:
    """The first bound ``text`` breaks, at the mark of the node or alias that breaks it.

    Raises PyYAML's errors for text that is not YAML (the caller reports those).
    """
    too_large = size_problem(file, text.encode("utf-8", errors="surrogatepass"))
    if too_large is not None:
        return too_large
    stack: list[_Open] = []
    anchors: dict[str, tuple[int, int]] = {}  # anchor -> (expanded size, height)
    aliased = 0  # values added by expanding aliases
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.CollectionStartEvent):
            if len(stack) + 1 > MAX_CONFIG_DEPTH:
                return _too_deep(file, event.start_mark)
            stack.append(_Open(event.anchor))
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            closed = stack.pop()
            if closed.anchor is not None:
                anchors[closed.anchor] = (closed.size, closed.height)
            if stack:
                stack[-1].size += closed.size
                stack[-1].height = max(stack[-1].height, closed.height + 1)
            continue
        if isinstance(event, yaml.ScalarEvent):
            size, height = 1, 0
            if event.anchor is not None:
                anchors[event.anchor] = (size, height)
        elif isinstance(event, yaml.AliasEvent):
            if any(frame.anchor == event.anchor for frame in stack):
                return ConfigProblem(
                    _position(file, event.start_mark),
                    f"alias *{event.anchor} is inside the node &{event.anchor} it names "
                    "(a recursive alias cannot be expanded)",
                )
            size, height = anchors.get(str(event.anchor), (1, 0))  # unknown: compose says so
            if len(stack) + height > MAX_CONFIG_DEPTH:
                return _too_deep(file, event.start_mark)
            aliased += size
            if aliased > MAX_ALIASED_VALUES:
                return ConfigProblem(
                    _position(file, event.start_mark),
                    f"alias *{event.anchor} takes what aliases add to the config past "
                    f"{MAX_ALIASED_VALUES} values (nested aliases multiply)",
                )
        else:
            continue  # stream and document events
        if stack:
            stack[-1].size += size
            stack[-1].height = max(stack[-1].height, height + 1)
    return None


def _too_deep(file: str, mark: Any) -> ConfigProblem:
    return ConfigProblem(
        _position(file, mark),
        f"nested deeper than {MAX_CONFIG_DEPTH} levels (aliases expanded)",
    )
