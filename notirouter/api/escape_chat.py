"""Escaping for the Markdown each chat service really renders: Mattermost, Discord, Teams runs.

Each service reads a different Markdown, so one escaper cannot serve them all: a backslash that
Discord consumes stays visible in Mattermost's web app, and a ``<`` that Discord shows as text
opens a link there. Every helper here turns untrusted text into markup that the service shows
as exactly that text: no link, mention, emphasis, code, heading, image or HTML, and no stray
backslash or zero-width character inside what an analyst copies (addresses, times, paths).
The conformance tests render their output with each service's own renderer.
"""

from __future__ import annotations

import re

from notirouter.api.escape import (
    MENTION_AT,
    ZERO_WIDTH_SPACE,
    defuse_urls,
    neutralise_at_mentions,
)

# The "@" of an e-mail address: after a letter or digit.
_EMAIL_AT = r"(?<=[^\W_])@"

# --- Mattermost -------------------------------------------------------------------------------
# The web app's Markdown (Mattermost's fork of marked) honours a backslash only before these;
# CommonMark (the mobile app) honours it before every ASCII punctuation character, so both
# consume it and neither shows it.
_MATTERMOST_BACKSLASHED = "`*_{}[]()+-.!|"
# Characters whose meaning comes from a pass after Markdown (mentions, ~channels, #hashtags,
# emoticons like ":)" and "<3", "$" inline LaTeX) or that the fork has no escape for (":" of a
# URL scheme, "<" of an autolink, "&" of an entity): a numeric character reference. Both apps
# decode it to the character as text, after every rule has run, and a copy is the character.
_MATTERMOST_ENTITIES = {"&": "&amp;", "<": "&#60;", ">": "&#62;", ":": "&#58;", "~": "&#126;"}
_MATTERMOST_ENTITIES |= {"#": "&#35;", "$": "&#36;", "=": "&#61;"}
_MATTERMOST_CHARS = {
    **{char: "\\" + char for char in _MATTERMOST_BACKSLASHED},
    **_MATTERMOST_ENTITIES,
}
# One pass, so that no replacement is escaped again. In order: a backslash the web app (or
# CommonMark) would read as an escape or a line break, before ASCII punctuation or at a line
# end ("C:\Windows" shows as it is everywhere); a mention; the "@" of an address; the ";" of
# a ";)" wink and the "-" of an "x-d" face;
# blanks that start a line (four would make an indented code block); any other character.
_MATTERMOST = re.compile(
    r"(?P<backslash>\\(?=[!-/:-@\[-`{-~]|$))"
    rf"|(?P<mention>{MENTION_AT})|(?P<address>{_EMAIL_AT})"
    r"|(?P<wink>;(?=-?\)))|(?P<xd>(?<=\b[xX])-(?=[dD]\b))|(?P<indent>^[ \t]+)"
    "|[" + re.escape("".join(_MATTERMOST_CHARS)) + "]",
    re.MULTILINE,
)


def _mattermost_replacement(match: re.Match[str]) -> str:
    kind = match.lastgroup
    if kind == "backslash":
        return "&#92;"
    if kind == "mention":
        return "@" + ZERO_WIDTH_SPACE
    if kind == "address":
        return "&#64;"
    if kind == "wink":
        return "&#59;"
    if kind == "xd":
        return "&#45;"
    if kind == "indent":
        return match.group().replace(" ", "&#32;").replace("\t", "&#9;")
    return _MATTERMOST_CHARS[match.group()]


def escape_mattermost(text: str) -> str:
    """Escape text for Mattermost Markdown: post text, attachment text, field values.

    Markdown punctuation the web app can escape gets a backslash; everything that a later pass
    of the web app reads (``@`` of an address, ``~channel``, ``#tag``, ``:emoji:``, ``<3``) or
    that it has no escape for (``<``, ``&``, the ``:`` of ``https:``) becomes a numeric
    character reference such as ``&#58;``, which both apps show as the character itself. A
    mention (``@channel``) gets a zero-width space after its ``@``, which the server's own
    mention check honours too. Line breaks are kept.
    """
    return _MATTERMOST.sub(_mattermost_replacement, text)


# Where the web app shows text without Markdown (attachment field titles) it still makes
# links of #hashtags and ~channels and draws emoticons (":smile:", ":)", ";-)", "<3"), and
# the server turns Slack's "<!channel>" into "@channel": a zero-width space after their first
# character breaks each; ordinary text gets none.
_MATTERMOST_PLAIN_BREAKS = re.compile(
    r"<(?=[!@#])|(?<!\w)(?:#(?=[^\W\d_])|~(?=\w)|:(?=[\w+-]+:(?!\w))"
    r"|[:;](?=-?(?:[()\[\]/|$@]|[dpsox](?!\w)|['`\u2019]-?\()))|(?<![\w<])<(?=/?3(?!\w))"
    r"|(?<=\bx)-(?=d\b)",
    re.IGNORECASE,
)
# What the web app links as an e-mail address even where it shows no Markdown.
MATTERMOST_ADDRESS = re.compile(r"(?<=[^\W_])@[\w.-]+\.[^\W\d_]{2}")


def escape_mattermost_plain(text: str) -> str:
    """Escape text Mattermost shows without Markdown (field titles, a linked title, fallback).

    Nothing there is Markdown, so nothing is backslash-escaped; mentions, hashtags, ~channels
    and emoticons are broken with a zero-width space. An e-mail address would still be linked
    there: check :data:`MATTERMOST_ADDRESS` and show such text as Markdown instead.
    """
    text = neutralise_at_mentions(text)
    return _MATTERMOST_PLAIN_BREAKS.sub(lambda m: m.group() + ZERO_WIDTH_SPACE, text)


# --- Discord ----------------------------------------------------------------------------------
# Discord's Markdown (simple-markdown rules) honours a backslash before any character that is
# not a letter, a digit or a space, so every character that can start markup gets one: no
# zero-width character is needed, and "\@everyone" is shown as "@everyone" and pings nobody.
_DISCORD_TABLE = str.maketrans({char: "\\" + char for char in "\\*_~`|<>[]()#-+.!@:="})


def escape_discord(text: str) -> str:
    """Escape text for Discord Markdown (content, embed title, description and fields).

    Every character that can start Discord markup (emphasis, code, spoilers, masked links,
    headings, lists, quotes, mentions, ``<@id>``, ``<t:...>``, URL schemes) is
    backslash-escaped; Discord shows the character and not the backslash. Line breaks are kept.
    """
    return text.translate(_DISCORD_TABLE)


# --- Teams TextRun ----------------------------------------------------------------------------
# The Adaptive Card renderer replaces "{{DATE(2026-01-14T15:06:57Z)}}" and "{{TIME(...)}}" in
# every text, Markdown or not, by a localised date.
_CARD_FUNCTION = re.compile(r"\{(?=\{)")
# Some clients read "<" in plain text as the start of HTML or of an autolink (a notification
# preview): a zero-width space after it, where no one copies anything.
_OPEN_ANGLE = re.compile("<(?!" + ZERO_WIDTH_SPACE + ")")


def escape_teams_plain(text: str) -> str:
    """Escape text for a Teams field shown without Markdown (a TextRun, a button title).

    Nothing is Markdown there; mentions are neutralised (not inside e-mail addresses), URL
    schemes defused as in :func:`~notirouter.api.escape.defuse_urls`, ``<`` followed by a
    zero-width space and ``{{DATE(...)}}`` broken so that the card shows it as typed.
    """
    text = _OPEN_ANGLE.sub("<" + ZERO_WIDTH_SPACE, neutralise_at_mentions(text))
    return defuse_urls(_CARD_FUNCTION.sub("{" + ZERO_WIDTH_SPACE, text))
