"""What the chat sinks (Teams, Mattermost, Slack, Discord) share: severity looks, safe links,
truncation that respects escaping, and reading the service's answer.

Private to the built-in plugins; it uses only the public ``notirouter`` API.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from urllib.parse import quote, urlsplit

from notirouter import TRUNCATION_MARKER, Fact, HttpResponse, Message, SendResult, Severity

Escape = Callable[[str], str]
Measure = Callable[[str], int]

# One glance must say how bad it is: an emoji that survives every client, a colour bar, a word.
SEVERITY_EMOJI: dict[Severity, str] = {
    Severity.CRITICAL: "🔴",
    Severity.HIGH: "🟠",
    Severity.MEDIUM: "🟡",
    Severity.LOW: "🔵",
    Severity.INFO: "⚪",
}
SEVERITY_COLOUR: dict[Severity, str] = {
    Severity.CRITICAL: "#D0021B",
    Severity.HIGH: "#F5760F",
    Severity.MEDIUM: "#F2C744",
    Severity.LOW: "#2E77D0",
    Severity.INFO: "#8A8D91",
}

EMPTY_VALUE = "—"
# Characters a chat markup could read as the end of a link target (Markdown's ")" and ">",
# Slack's "|" and ">"): percent-encode them; "%" stays so existing escapes survive.
_URL_SAFE_CHARS = "/:?#[]@!$&'*+,;=%~-._"
_WHITESPACE = re.compile(r"\s+")


def severity_badge(severity: Severity) -> str:
    """``🔴 CRITICAL``: the emoji and the word, for headers and notifications."""
    return f"{SEVERITY_EMOJI[severity]} {severity.value.upper()}"


def one_line(text: str) -> str:
    """Collapse newlines and runs of whitespace: titles and names are one line everywhere."""
    return _WHITESPACE.sub(" ", text).strip()


def link_label(message: Message) -> str:
    """The link's label on one line; never empty, or the link would have nothing to click."""
    return one_line(message.link_label) or "Open"


def safe_link(url: str | None) -> str | None:
    """``url`` if it is an absolute http(s) URL fit for a button or a link, else ``None``.

    A ``javascript:`` or ``data:`` link must never become clickable, and characters that
    would end a Markdown or Slack link early are percent-encoded.
    """
    if not url or len(url) > 2000 or any(ch.isspace() or ord(ch) < 32 for ch in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return quote(url, safe=_URL_SAFE_CHARS)


def _as_is(text: str) -> str:
    return text


def fit_text(
    message: Message,
    limit: int,
    escape: Escape = _as_is,
    measure: Measure = len,
) -> str:
    """The message's text, escaped and cut to ``limit``; a digest is cut to whole item lines
    and keeps its ``and N more`` line, counting the items cut."""
    if message.digest is not None:
        shown = message.digest.text_within(lambda text: measure(escape(text)) <= limit)
        if shown is not None:
            return escape(shown)
    return fit(message.text.strip(), limit, escape, measure)


def fit(
    text: str,
    limit: int,
    escape: Escape = _as_is,
    measure: Measure = len,
    marker: str = TRUNCATION_MARKER,
) -> str:
    """``escape(text)``, cut so that its ``measure`` is at most ``limit``.

    The cut is made in the plain text, before escaping, so that no escape sequence is split;
    a cut text ends with the (escaped) visible ``marker``.
    """
    # Escaping never shrinks text and every measure counts at least one per character: a
    # text longer than ``limit`` cannot fit, and only its first ``limit`` characters matter.
    if len(text) <= limit:
        escaped = escape(text)
        if measure(escaped) <= limit:
            return escaped
    tail = escape(marker)
    if measure(tail) > limit:
        tail = ""

    def fits(length: int) -> bool:
        return measure(escape(text[:length].rstrip()) + tail) <= limit

    low, high = 0, min(len(text), limit)
    # Escaping a long text is the cost: start from the average expansion of the whole
    # candidate and narrow the search to a few percent around it (each bound is checked).
    expanded = measure(escape(text[:high]))
    if expanded:
        guess = high * (limit - measure(tail)) // expanded
        near_low, near_high = guess * 97 // 100, min(high, guess * 103 // 100 + 1)
        if low < near_low and fits(near_low):
            low = near_low
        if near_high < high and not fits(near_high):
            high = near_high - 1
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return escape(text[:low].rstrip()) + tail


def fit_facts(
    facts: Sequence[Fact],
    *,
    escape: Escape,
    name_limit: int,
    value_limit: int,
    budget: int,
    max_rows: int,
    measure: Measure = len,
    row_cost: int = 0,
    name_escape: Escape | None = None,
) -> tuple[list[tuple[str, str]], int]:
    """Escaped (name, value) rows that fit ``budget`` in total, and how many facts were left out.

    Facts keep their order (the formatter puts the important ones first); the fact that
    crosses the budget is cut with a visible marker, later ones are counted as omitted.
    Names are escaped with ``name_escape`` where the service shows them differently.
    """
    rows: list[tuple[str, str]] = []
    used = 0
    for fact in facts:
        if len(rows) >= max_rows:
            break
        name = fit(one_line(fact.name) or EMPTY_VALUE, name_limit, name_escape or escape, measure)
        room = min(value_limit, budget - used - measure(name) - row_cost)
        # Not worth a row if little more than the truncation marker would fit.
        if room < min(value_limit, 2 * len(TRUNCATION_MARKER)):
            break
        value = fit(fact.value.strip() or EMPTY_VALUE, room, escape, measure)
        rows.append((name, value))
        used += measure(name) + measure(value) + row_cost
    return rows, len(facts) - len(rows)


def omitted_note(count: int) -> str:
    """The visible line that says facts were left out."""
    return f"… {count} more fact{'s' if count != 1 else ''} not shown"


def json_len(text: str) -> int:
    """Bytes ``text`` takes inside a compact UTF-8 JSON document (quotes excluded)."""
    return len(json.dumps(text, ensure_ascii=False).encode()) - 2


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the most any service may count for a string."""
    return len(text.encode("utf-16-le")) // 2


def excerpt(text: str, limit: int = 200) -> str:
    """One short line of a response body for a failure detail."""
    text = one_line(text)
    return text if len(text) <= limit else text[:limit] + "…"


def expect_body(response: HttpResponse, expected: str) -> SendResult | None:
    """For a 2xx answer: delivered if the body is ``expected``, else permanent; ``None`` otherwise.

    Slack and Mattermost always answer ``ok``. A 2xx with anything else (a proxy's login page,
    say) means the message did not reach the channel, and sending again will not change that:
    it goes to the dead letters, where it can be replayed once the endpoint is fixed.
    """
    if not 200 <= response.status < 300:
        return None
    body = response.text().strip()
    if body.lower() == expected:
        return SendResult.delivered(f"HTTP {response.status} {expected}")
    shown = excerpt(body) or "an empty body"
    return SendResult.permanent(f"HTTP {response.status} with an unexpected answer: {shown}")
