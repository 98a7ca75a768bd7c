"""Silence matchers (``alert.rule.name=~"PowerShell.*"``): parsed, validated and evaluated.

A matcher names a template variable by its dotted path (``type``, ``alert.rule.name``,
``community``...), an operator and a value: ``=`` and ``!=`` compare the text, ``=~`` and
``!~`` match a regular expression against the *whole* text (as Alertmanager does). A value is
bare or double-quoted (JSON escapes). A variable that is missing reads as the empty text, so
``name!=x`` matches an event without ``name`` and ``name=""`` selects exactly those.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

OPERATORS = ("=~", "!~", "!=", "=")  # longest first: "=~" is not "=" then "~..."
_NAME = r"[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*"
_MATCHER = re.compile(rf"^\s*({_NAME})\s*(=~|!~|!=|=)\s*(.*?)\s*$", re.DOTALL)
MAX_VALUE_CHARS = 1000


class MatcherError(ValueError):
    """A matcher that does not parse, or whose regular expression does not compile."""


@dataclass(frozen=True)
class Matcher:
    """One ``name op value`` test on an event's variables."""

    name: str
    operator: str
    value: str

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """Parse ``name=value``, ``name!="value"``, ``name=~"regex"``...; raise MatcherError."""
        match = _MATCHER.match(text)
        if match is None:
            raise MatcherError(
                f"{text!r} is not a matcher: expected NAME=VALUE, NAME!=VALUE, NAME=~REGEX or "
                'NAME!~REGEX, NAME a dotted variable path (alert.rule.name=~"PowerShell.*")'
            )
        name, operator, raw = match.groups()
        value = raw
        if raw.startswith('"'):
            try:
                value = json.loads(raw)
            except ValueError:
                value = None
            if not isinstance(value, str):
                raise MatcherError(f"{text!r}: the quoted value is not closed or badly escaped")
        if len(value) > MAX_VALUE_CHARS:
            raise MatcherError(f"{name}: a value has at most {MAX_VALUE_CHARS} characters")
        matcher = cls(name, operator, value)
        matcher.check()
        return matcher

    def check(self) -> None:
        """Raise :class:`MatcherError` if the regular expression does not compile."""
        if self.operator in ("=~", "!~"):
            try:
                _regex(self.value)
            except re.error as exc:
                raise MatcherError(
                    f"{self.name}{self.operator}: invalid regular expression {self.value!r}: {exc}"
                ) from None

    def matches(self, variables: Mapping[str, Any]) -> bool:
        """Whether the event whose ``variables`` these are passes this test."""
        text = shown(lookup(variables, self.name))
        if self.operator == "=":
            return text == self.value
        if self.operator == "!=":
            return text != self.value
        found = _regex(self.value).fullmatch(text) is not None
        return found if self.operator == "=~" else not found

    def __str__(self) -> str:
        return f"{self.name}{self.operator}{json.dumps(self.value, ensure_ascii=False)}"


def matches_all(matchers: Sequence[Matcher], variables: Mapping[str, Any]) -> bool:
    """Every matcher passes (a silence applies)."""
    return all(m.matches(variables) for m in matchers)


def lookup(variables: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path (a list is indexed by a number), ``None`` if absent."""
    value: Any = variables
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def shown(value: Any) -> str:
    """The text a matcher compares: strings as they are, ``true``/``false``, numbers, JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


@functools.lru_cache(maxsize=512)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)
