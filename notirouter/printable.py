"""Text made inert for a terminal or a log file: one line, no control sequence left.

Log lines and ``dead list`` show text that came from outside (a request path, an event's
type, a service's error answer). A newline in it would forge a log line; an ANSI escape
(``ESC [ 2 J``) would clear or recolour the operator's terminal; a bidi override would reorder
what they read. Every such character is shown as an escape instead: ``\\n``, ``\\x1b``,
``\\x9b``, ``\\udc80`` (a lone surrogate, which no terminal could even be sent), ``⟨U+202E⟩``.
"""

from __future__ import annotations

import re

from notirouter.api.escape import reveal_invisible

# C0 controls (newline and tab included), DEL, C1 controls (0x9b is a one-byte CSI on some
# terminals), and lone surrogates.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def inert(text: str) -> str:
    """``text`` on one line, with every control character and bidi control shown escaped."""
    if text.isprintable():  # the common case: nothing to escape, no copy
        return text
    return reveal_invisible(_CONTROL.sub(_escaped, text))


def inert_lines(text: str) -> str:
    """Like :func:`inert`, but keeping line breaks (for tracebacks, which span lines)."""
    if text.isprintable():
        return text
    return reveal_invisible(_CONTROL_BUT_NEWLINE.sub(_escaped, text))


# What json.dumps(ensure_ascii=False) leaves raw but a terminal must not get: DEL, C1 controls,
# lone surrogates (unprintable: print() would raise), bidi and invisible format characters.
_JSON_UNSAFE = re.compile(
    "[\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c"
    "\u200b\u2060-\u2064\ufeff\u180e\u00ad]"
)


def inert_json(text: str) -> str:
    """JSON text (from ``json.dumps(..., ensure_ascii=False)``) safe to print on a terminal.

    Each unsafe character becomes its ``\\uXXXX`` escape, which is valid JSON for the same
    character: the output still parses back to exactly the data.
    """
    if text.isprintable() or not _JSON_UNSAFE.search(text):
        return text
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
