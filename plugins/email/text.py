"""The text of an alert mail: one-line header values, the severity's look, the body variables.

Everything that comes from an event is untrusted: it never reaches a header unsanitised,
bidi controls show as ``⟨U+202E⟩``, URL schemes and ``www.`` hosts in it are broken
(``notirouter.defuse_urls``, as in every chat sink) and the HTML template autoescapes it.
"""

from __future__ import annotations

import re
from typing import Any

from notirouter import (
    TRUNCATION_MARKER,
    Message,
    Severity,
    defuse_urls,
    reveal_invisible,
    truncate,
)

MAX_SUBJECT_CHARS = 200
# The title's share of the subject, so that the default subject keeps its "(ALxxxx)" suffix.
MAX_SUBJECT_TITLE_CHARS = 160
# Mail has no length limit of its own (servers take megabytes): the text is cut only far
# beyond anything read in one alert, and then says where the whole of it is.
MAX_TEXT_CHARS = 200_000
MAX_FACT_CHARS = 2_000

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")

SEVERITY_COLOURS = {
    Severity.INFO: "#6b7280",
    Severity.LOW: "#2563eb",
    Severity.MEDIUM: "#d97706",
    Severity.HIGH: "#ea580c",
    Severity.CRITICAL: "#dc2626",
}

# Each severity's badge has a style of its own beyond its colour: the higher, the heavier;
# CRITICAL is also outlined, so it differs from HIGH even for a reader who sees no colour.
SEVERITY_BADGE_STYLES = {
    Severity.INFO: "font-weight:normal;",
    Severity.LOW: "font-weight:normal;",
    Severity.MEDIUM: "font-weight:bold;",
    Severity.HIGH: "font-weight:bold;",
    Severity.CRITICAL: "font-weight:bold;outline:2px solid #7f1d1d;",
}

# Characters that must never reach a header: line breaks of every kind and other controls.
HEADER_UNSAFE = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")
# "=?utf-8?b?...?=" typed in a title would be decoded by mail clients (and Python's own
# header parser) as an RFC 2047 encoded word, bringing back any character, a raw bidi override
# included: a zero-width space after the "=" leaves it literal text.
_ENCODED_WORD_START = re.compile(r"=(?=\?)")


def one_line(text: str, limit: int = MAX_SUBJECT_CHARS) -> str:
    """``text`` on one line, without control characters, at most ``limit`` characters.

    Untrusted text with CR/LF must not start a new header (nor, in the text part, forge a
    fact row); Python's email package would refuse it in a header anyway, which would turn a
    hostile title into a failed delivery. A cut text ends with the truncation marker.
    """
    return truncate(" ".join(HEADER_UNSAFE.sub(" ", text).split()), limit)


def clean_header_text(text: str, limit: int = MAX_SUBJECT_CHARS) -> str:
    """``text`` fit for a header: one line (:func:`one_line`), every bidi control or
    invisible character shown (``⟨U+202E⟩``) even when a template took it straight from the
    event, and no RFC 2047 encoded word that a client would decode."""
    text = one_line(reveal_invisible(text), limit)
    return _ENCODED_WORD_START.sub("=\u200b", text)


MAX_DIGEST_ROWS = 1000


def severity_label(severity: Severity) -> str:
    """``HIGH`` for ``Severity.HIGH``: how the subject and both parts show it."""
    return severity.label


def body_variables(message: Message, short_id: str) -> dict[str, Any]:
    """What both templates show, every untrusted value made safe for a mail."""
    text = defuse_urls(truncate(message.text.strip(), MAX_TEXT_CHARS))
    link = message.link if message.link and is_web_link(message.link) else None
    return {
        "title": defuse_urls(one_line(message.title, 1000)),
        "severity": severity_label(message.severity),
        "colour": SEVERITY_COLOURS[message.severity],
        "badge_style": SEVERITY_BADGE_STYLES[message.severity],
        "short_id": short_id,
        "text": text,
        # Paragraphs (split at blank lines) of lines: <p> and <br> in the HTML part.
        "paragraphs": [p.splitlines() for p in _PARAGRAPH_BREAK.split(text) if p.strip()],
        "cut": text.endswith(TRUNCATION_MARKER),
        # One line per fact, so a value with line breaks cannot forge further fact rows.
        "facts": [
            {
                "name": defuse_urls(one_line(fact.name)),
                "value": defuse_urls(one_line(fact.value, MAX_FACT_CHARS)),
            }
            for fact in message.facts
        ],
        "link": link,
        # The label of our own link must not read as another URL either.
        "link_label": defuse_urls(one_line(message.link_label, 100)) or "Open",
        "route": message.route,
        "digest": _digest_rows(message),
    }


def _digest_rows(message: Message) -> dict[str, Any] | None:
    """A digest as table rows for the HTML part (the text part shows its text lines)."""
    digest = message.digest
    if digest is None:
        return None
    rows = [
        {
            "severity": severity_label(item.severity),
            "colour": SEVERITY_COLOURS[item.severity],
            "title": defuse_urls(one_line(item.title, 1000)),
            "status": defuse_urls(one_line(item.status or "", 200)),
            "link": item.link if item.link and is_web_link(item.link) else None,
        }
        for item in digest.items[:MAX_DIGEST_ROWS]
    ]
    more = digest.more + len(digest.items) - len(rows)
    return {"rows": rows, "more": f"and {more} more" if more else ""}


def is_web_link(url: str) -> bool:
    """Whether ``url`` may become a clickable button: http(s) only, never javascript:,
    data: or file:, and nothing that could break a line."""
    return url.lower().startswith(("https://", "http://")) and not HEADER_UNSAFE.search(url)
