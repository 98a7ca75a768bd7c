"""Escaping untrusted text, in one place, for every markup a sink speaks.

Event values (titles, hostnames, command lines) are attacker-controlled: a host named
``@channel`` must not page a channel, and a title like ``[login](https://evil)`` must not become
a live link. Sinks call these helpers on every untrusted value; config templates are trusted but
still produce plain text, so sinks escape the whole rendered text.
"""

from __future__ import annotations

import html
import re

ZERO_WIDTH_SPACE = "\u200b"

# "@channel", "@here", "@all", "@everyone" and "@username": a zero-width space after the "@"
# keeps the text readable while no chat service parses it as a mention any more.
_AT_MENTION = re.compile(r"@(?=[\w.-])")
# Slack's special syntax "<!channel>", "<!here>", "<@U123>", "<#C123>" and "<!subteam^...>".
_ANGLE_MENTION = re.compile(r"<(?=[!@#])")

# CommonMark treats a backslash before any ASCII punctuation as a literal character.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~^=:\"'$&%])")
_MARKDOWN_LINK_SCHEME = re.compile(r"(?i)\b(https?|ftp|mailto|file|javascript|data):")

TRUNCATION_MARKER = "… [truncated]"


def neutralise_mentions(text: str) -> str:
    """Make ``@channel``-style and ``<!here>``-style mentions inert, keeping them readable."""
    text = _AT_MENTION.sub("@" + ZERO_WIDTH_SPACE, text)
    return _ANGLE_MENTION.sub("<" + ZERO_WIDTH_SPACE, text)


def escape_markdown(text: str) -> str:
    """Escape text for Markdown (CommonMark as Mattermost, Discord and Teams read it).

    Every punctuation character that could start markup is backslash-escaped, mentions are
    neutralised, and URL schemes are broken with a zero-width space so that autolinking
    renderers do not turn an attacker's URL into a live link.
    """
    text = neutralise_mentions(text)
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", text)
    return _MARKDOWN_LINK_SCHEME.sub(lambda m: m.group(1) + ZERO_WIDTH_SPACE + ":", text)


def escape_slack(text: str) -> str:
    """Escape text for Slack ``mrkdwn``: the three control characters and every mention.

    Slack only decodes ``&amp;``, ``&lt;`` and ``&gt;``; once ``<`` is escaped, no link or
    special mention (``<!channel>``, ``<https://x|label>``) can be formed.
    """
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _AT_MENTION.sub("@" + ZERO_WIDTH_SPACE, text)
    # Formatting characters would toggle bold/italic/strike/code around attacker text.
    for char in "*_~`":
        text = text.replace(char, char + ZERO_WIDTH_SPACE)
    return text


def escape_html(text: str) -> str:
    """Escape text for HTML element content and quoted attribute values."""
    return html.escape(text, quote=True)


def truncate(text: str, limit: int, marker: str = TRUNCATION_MARKER) -> str:
    """Cut ``text`` to at most ``limit`` code points, ending with a visible ``marker``."""
    if len(text) <= limit:
        return text
    if limit <= len(marker):
        return marker[:limit]
    return text[: limit - len(marker)].rstrip() + marker


def truncate_utf8(text: str, limit_bytes: int, marker: str = TRUNCATION_MARKER) -> str:
    """Cut ``text`` so its UTF-8 encoding fits in ``limit_bytes``, with a visible ``marker``."""
    encoded = text.encode()
    if len(encoded) <= limit_bytes:
        return text
    room = limit_bytes - len(marker.encode())
    if room <= 0:
        return marker.encode()[:limit_bytes].decode(errors="ignore")
    return encoded[:room].decode(errors="ignore").rstrip() + marker
