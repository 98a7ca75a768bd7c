"""What is accepted as event data, decided once: at the door, and for enrichment results.

A value that is accepted must be deliverable. Two things in valid-looking JSON are not:

- a lone surrogate (``"\\ud800"``): Python decodes it, but no UTF-8 encoder (the stored
  message, SQLite, a sink's request body) can write it back;
- deep nesting: the stored message is read back with a parser that stops at about 200 levels,
  and pydantic's serialiser at 255.

So a body must be UTF-8 (``400`` otherwise; ``ED A0 80``, a surrogate written as raw bytes, is
not UTF-8), JSON (``400``), an object (``400``) nested at most :data:`MAX_NESTING` levels
(``422``, naming where); lone surrogates in keys and strings become U+FFFD. Enrichment results
go through the same :func:`clean_data`, so the same limit and the same text hold for them.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_NESTING = 64
"""How many objects and arrays deep event data and enrichment results may be (the top-level
object is level 1). Sekoia.io's events and API objects are under 10 levels deep."""

REPLACEMENT_CHARACTER = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class PayloadRefused(ValueError):
    """A body refused at the door: ``status`` (400 or 422), a short ``reason``, and ``loc``.

    ``loc`` (for a 422) is the path to the offending value, in pydantic's error format.
    """

    def __init__(self, status: int, reason: str, loc: tuple[str | int, ...] = ()) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.loc = loc

    def detail(self) -> list[dict[str, Any]]:
        """The 422 ``detail`` list, shaped like a validation error's."""
        return [{"loc": list(self.loc), "msg": self.reason, "type": "too_deep"}]


class TooDeep(ValueError):
    """Data nested deeper than :data:`MAX_NESTING`; ``loc`` is where the limit was crossed."""

    def __init__(self, loc: tuple[str | int, ...]) -> None:
        super().__init__(f"nested deeper than {MAX_NESTING} levels")
        self.loc = loc


def load_payload(body: bytes) -> dict[str, Any]:
    """Decode a webhook body into clean event data, or raise :class:`PayloadRefused`."""
    try:
        # "utf-8-sig": a leading byte order mark is tolerated (RFC 8259 allows ignoring it).
        # Strict decoding refuses surrogates written as bytes, which json.loads(bytes) accepts.
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PayloadRefused(400, f"the body is not UTF-8 (invalid byte at {exc.start})") from None
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise PayloadRefused(422, f"nested deeper than {MAX_NESTING} levels") from None
    except ValueError as exc:
        raise PayloadRefused(400, f"malformed JSON: {exc}") from None
    if not isinstance(value, dict):
        raise PayloadRefused(400, "the body must be a JSON object")
    # The common case costs two byte scans, not a walk: with at most MAX_NESTING brackets the
    # data cannot nest deeper, and without a \uD800-\uDFFF escape it holds no lone surrogate
    # (the text is strict UTF-8, which cannot carry one).
    if body.count(b"{") + body.count(b"[") <= MAX_NESTING and not _SURROGATE_ESCAPE.search(body):
        return value
    try:
        cleaned: dict[str, Any] = clean_data(value)
    except TooDeep as exc:
        raise PayloadRefused(422, str(exc), exc.loc) from None
    return cleaned


def _refuse_constant(name: str) -> Any:
    # NaN and Infinity are not JSON (RFC 8259); stored, they would come back as null.
    raise ValueError(f"{name} is not a JSON value")


def clean_data(value: Any) -> Any:
    """``value`` with lone surrogates replaced by U+FFFD; :class:`TooDeep` past the limit.

    Containers are copied (the input may be an enricher's cached object); anything other
    than dicts, lists, tuples and strings is returned as it is.
    """
    return _clean(value, 0)


def clean_text(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD (other text is returned as is)."""
    if text.isascii() or not _SURROGATE.search(text):
        return text
    return _SURROGATE.sub(REPLACEMENT_CHARACTER, text)


def _clean(value: Any, depth: int) -> Any:
    # Recursion is bounded by MAX_NESTING: the limit is checked before going one level down.
    # The location of a violation is built only then, while unwinding.
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        if depth >= MAX_NESTING:
            raise TooDeep(())
        cleaned: dict[Any, Any] = {}
        for key, item in value.items():
            try:
                cleaned[clean_text(key) if isinstance(key, str) else key] = _clean(item, depth + 1)
            except TooDeep as exc:
                raise TooDeep((str(key), *exc.loc)) from None
        return cleaned
    if isinstance(value, list | tuple):
        if depth >= MAX_NESTING:
            raise TooDeep(())
        items: list[Any] = []
        for index, item in enumerate(value):
            try:
                items.append(_clean(item, depth + 1))
            except TooDeep as exc:
                raise TooDeep((index, *exc.loc)) from None
        return items
    return value
