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
# keeps the text readable while no chat service parses it as a mention any more. A mention
# starts a word: an "@" right after a letter or digit is inside an email address
# ("analyst@example.com"), which must stay exactly as typed, or a copied address is wrong.
MENTION_AT = r"(?<![^\W_])@(?=[\w.-])"
_AT_MENTION = re.compile(MENTION_AT)
# Slack's special syntax "<!channel>", "<!here>", "<@U123>", "<#C123>" and "<!subteam^...>".
_ANGLE_MENTION = re.compile(r"<(?=[!@#])")
# Every "<" not already followed by a zero-width space. After "<" + U+200B nothing can start:
# not an HTML tag ("<a", "<img", "</b>": the tag name must follow "<" at once), not a Markdown
# autolink ("<smb://...>", "<ms-word:...>": the scheme must too), not a Slack "<!here>". For the
# same reason a "<" before a space or a line end ("a < b") starts nothing and stays as typed.
_OPEN_ANGLE = re.compile("<(?![" + ZERO_WIDTH_SPACE + r"\s]|$)")

# CommonMark treats a backslash before any ASCII punctuation as a literal character.
# A translation table does it in one C-level pass (a regex substitution is ~20x slower).
_MARKDOWN_SPECIAL = str.maketrans({char: "\\" + char for char in "\\`*_{}[]()#+-.!|<>~^=:\"'$&%"})
# What autolinking renderers (Slack, Teams, Mattermost, Discord) turn into a live link on their
# own: a URL scheme, or a bare "www." host. No word boundary before them: GFM autolinks a URL
# right after "_" (a word character), so "_https://evil" must be broken too; a false hit such
# as "metadata:" only gains an invisible character.
_URL_SCHEME = re.compile(r"(?i)(https?|ftp|mailto|file|javascript|data|vbscript):")
# Not after "@": "analyst@www.example.com" is an address, not a link to break.
_WWW_HOST = re.compile(r"(?i)(?<!@)(www)\.")
# A protocol-relative "//evil.example/login": linkify-it (markdown-it, which the Adaptive Cards
# renderer is built on) links it, and a web client resolves it against its own https origin.
# After a colon it is the rest of a "scheme://" that nothing links without its scheme.
_PROTOCOL_RELATIVE = re.compile(r"(?<!:)//(?=[^\s/])")

# Teams renders a small Markdown subset (bold, italic, lists, links) in TextBlock and FactSet,
# and its clients have handled backslash escapes inconsistently: escape only what can form
# markup there, so that a Windows path keeps its backslashes on every client.
# A backslash is doubled only before ASCII punctuation or a line end, where it would act.
_TEAMS_BACKSLASH = re.compile(r"\\(?=[!-/:-@\[-`{-~]|$)", re.MULTILINE)
_TEAMS_INLINE = str.maketrans({char: "\\" + char for char in "*_~`[]|&{"})
# The "@" of an e-mail address (after a letter or digit): linkify would make a mailto link.
_TEAMS_ADDRESS_AT = re.compile(r"(?<=[^\W_])@")
_TEAMS_INDENT = re.compile(r"^[ \t]+", re.MULTILINE)
# Block markers only count at the start of a line: a list item ("- ", "+ ", "1. "), a heading
# ("# "), a quote (">"), or a setext underline / thematic break ("===", "---").
_TEAMS_LINE_START = re.compile(
    r"^([ \t]{0,3})"
    r"([+-](?=[ \t]|$)|#{1,6}(?=[ \t]|$)|>|\d{1,9}(?=[.)](?:[ \t]|$))|[=-](?=[=-]*[ \t]*$))",
    re.MULTILINE,
)

# "&lt;" typed by an attacker: a field that decodes entities would show "<", one that does
# not would show "&lt;". A zero-width space after the "&" makes both show the typed text.
_ENTITY_LIKE = re.compile(r"&(?=#?\w+;)")

TRUNCATION_MARKER = "… [truncated]"

# Characters that change how text around them displays while showing nothing themselves: bidi
# embeddings, overrides, isolates and marks ("invoice\u202efdp.exe" reads "invoiceexe.pdf"),
# zero-width and invisible formatting characters, and C0/C1 controls other than tab and line
# breaks. Zero-width (non-)joiners are kept: scripts and emoji sequences need them.
_INVISIBLE = re.compile(
    "[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c"
    "\u200b\u2060-\u2064\ufeff\u180e\u00ad"
    "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
)


def reveal_invisible(text: str) -> str:
    """Show bidi controls and invisible characters as visible ``⟨U+202E⟩`` tokens.

    An analyst must see a spoofed file name or host, not be fooled by it: once revealed, the
    characters no longer reorder or hide anything, in any sink, subject line or log line.
    """
    if not _INVISIBLE.search(text):  # the common case: one scan, no copy
        return text
    return _INVISIBLE.sub(lambda m: f"⟨U+{ord(m.group()):04X}⟩", text)


def neutralise_mentions(text: str) -> str:
    """Make ``@channel``-style and ``<!here>``-style mentions inert, keeping them readable.

    A zero-width space goes after an ``@`` that starts a word and after a ``<`` that opens
    Slack's ``<!here>``, ``<@U…>`` or ``<#C…>``; an ``@`` inside an email address
    (``analyst@example.com``, right after a letter or digit) is left alone, so a copied
    address is the real one.
    """
    return _ANGLE_MENTION.sub("<" + ZERO_WIDTH_SPACE, neutralise_at_mentions(text))


def escape_markdown(text: str) -> str:
    """Escape text for CommonMark, for a sink whose service has no escaper of its own.

    The built-in sinks use their service's own rules instead: :func:`escape_teams`,
    ``escape_mattermost`` and ``escape_discord`` (:mod:`notirouter.api.escape_chat`).

    Every punctuation character that could start markup is backslash-escaped, mentions are
    neutralised, and URL schemes are broken with a zero-width space so that autolinking
    renderers do not turn an attacker's URL into a live link.
    """
    # URLs are defused before the colon gets its backslash, or the scheme would not match.
    text = defuse_urls(neutralise_mentions(text))
    return text.translate(_MARKDOWN_SPECIAL)


def defuse_urls(text: str) -> str:
    """Break URL schemes, ``www.`` hosts and ``//host`` with a zero-width space.

    Nothing autolinks them any more, and the text reads the same; only a link the sink builds
    itself (a button, a title link) is clickable.
    """
    text = _URL_SCHEME.sub(lambda m: m.group(1) + ZERO_WIDTH_SPACE + ":", text)
    text = _WWW_HOST.sub(lambda m: m.group(1) + ZERO_WIDTH_SPACE + ".", text)
    return _PROTOCOL_RELATIVE.sub("/" + ZERO_WIDTH_SPACE + "/", text)


def escape_plain(text: str) -> str:
    """Prepare text for a field shown without markup (Slack ``plain_text``, a Teams TextRun).

    Nothing needs escaping there, but mentions are still neutralised, URLs defused and every
    ``<`` made inert, since some clients autolink, resolve or render them in plain text too
    (a MessageCard's summary, a notification preview). An ``&`` that starts something shaped
    like an entity (``&lt;``, ``&#60;``) gets a zero-width space after it, so the typed text
    shows whether or not the client decodes entities there.
    """
    text = neutralise_at_mentions(text)
    text = _ENTITY_LIKE.sub("&" + ZERO_WIDTH_SPACE, text)
    return defuse_urls(_OPEN_ANGLE.sub("<" + ZERO_WIDTH_SPACE, text))


def escape_teams(text: str) -> str:
    """Escape text for the Markdown subset of Microsoft Teams (TextBlock, Fact, MessageCard).

    Only the characters that can start markup in Teams are backslash-escaped (emphasis, code,
    link brackets, table pipes, block markers at the start of a line, the ``&`` of an entity
    and the ``{`` of a ``{{DATE(...)}}`` card function); a backslash is doubled only where it
    would otherwise escape the next character, and blanks that start a line (an indented code
    block) become ``&#32;``. Mentions are neutralised, URLs defused, and the ``@`` of an e-mail
    address is escaped so that no ``mailto:`` link is made; the address itself is unchanged.

    Every ``<`` gets a zero-width space after it: a MessageCard renders HTML (``<a href>``,
    ``<img>``) and an Adaptive Card TextBlock reads ``<smb://host/share>`` as an autolink. A
    zero-width space is not markup, so it works the same in both formats and on every client,
    where a backslash before ``<`` is read inconsistently.
    """
    text = defuse_urls(_OPEN_ANGLE.sub("<" + ZERO_WIDTH_SPACE, neutralise_at_mentions(text)))
    text = _TEAMS_BACKSLASH.sub(r"\\\\", text).translate(_TEAMS_INLINE)
    text = _TEAMS_ADDRESS_AT.sub(r"\\@", text)
    text = _TEAMS_LINE_START.sub(_escape_line_start, text)
    return _TEAMS_INDENT.sub(lambda m: "&#32;" * len(m.group().expandtabs(4)), text)


def neutralise_at_mentions(text: str) -> str:
    """A zero-width space after the ``@`` of each mention, never inside an e-mail address.

    :func:`neutralise_mentions` also breaks Slack's ``<!here>`` forms; a markup that escapes
    ``<`` itself needs only this.
    """
    return _AT_MENTION.sub("@" + ZERO_WIDTH_SPACE, text)


def _escape_line_start(match: re.Match[str]) -> str:
    indent, marker = match.group(1), match.group(2)
    if marker.isdigit():  # "1." or "1)" starts an ordered list: escape the punctuation
        return indent + marker + "\\"
    return indent + "\\" + marker


def escape_slack(text: str) -> str:
    """Escape text for Slack ``mrkdwn`` (use it with ``verbatim: true``): links and mentions.

    Slack only decodes ``&amp;``, ``&lt;`` and ``&gt;``, ``&`` first so that a typed ``&lt;``
    shows as those four characters; once ``<`` is escaped no link or special mention
    (``<!channel>``, ``<https://x|label>``) can form. ``@name`` mentions are neutralised and URL
    schemes defused (clients link them even in verbatim text).

    mrkdwn has no escape for ``*``, ``_``, ``~`` and backticks (a backslash stays visible, and a
    zero-width space next to them can even enable formatting): untrusted text belongs in
    ``plain_text`` objects (:func:`escape_plain`) wherever Block Kit allows them.
    """
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = neutralise_at_mentions(text)
    return defuse_urls(text)


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
