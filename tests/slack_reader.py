"""A small reader of Slack's text rules, to judge what a Slack client shows for our payloads.

Slack publishes no renderer, only its rules (docs.slack.dev "Formatting text for app
surfaces"); this reader follows them, erring on the eager side wherever the rules are vague:

- ``mrkdwn``: ``<...>`` is a control sequence (a link ``<url|label>`` or ``<url>``, a special
  mention ``<!here>``/``<!channel>``/``<!everyone>``/``<!subteam^…>``, a user ``<@U…>``, a
  channel ``<#C…>``); outside those, ``&amp;``, ``&lt;`` and ``&gt;`` (and only those) are
  decoded for display, after the control sequences are found, so ``&lt;!here&gt;`` is text.
  ``*bold*``, ``_italic_``, ``~strike~``, `` `code` `` and fenced code apply when the opening
  sign follows the start, a space or a non-alphanumeric character (a zero-width space counts:
  Slack does not treat it as part of a word) and the closing one is followed by the same.
  A line starting with ``>`` or ``&gt;`` is a quote. ``:name:`` is an emoji.
  Unless the object is ``verbatim``, Slack also links bare domains (``evil.example/login``),
  ``#channel`` names and ``@name`` mentions by itself.
- every text, ``plain_text`` included: clients turn a URL with a scheme or a ``www.`` host
  into a link whatever the text type (Slack says this cannot be turned off).
- ``plain_text``: no markup. Whether ``&lt;`` is decoded there is not documented, so the
  reader gives both readings and a caller requires them to agree. ``:name:`` is an emoji when
  ``emoji`` is true.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

ZWSP = "\u200b"
_CONTROL = re.compile(r"<([^<>\n]+)>")
_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&"))
# A character that can be part of a word around an emphasis sign (the zero-width space is not).
_WORD = r"[^\W_]"
_EMPHASIS = {
    kind: re.compile(rf"(?<!{_WORD}){re.escape(sign)}(?=[^\s{re.escape(sign)}])"
                     rf"([^\n]*?[^\s])?{re.escape(sign)}(?!{_WORD})")
    for kind, sign in (("bold", "*"), ("italic", "_"), ("strike", "~"))
}  # fmt: skip
_CODE = re.compile(r"```.+?```|`[^`\n]+`", re.DOTALL)
_QUOTE = re.compile(r"^(?:>|&gt;)", re.MULTILINE)
_EMOJI = re.compile(r":[a-z0-9_+'-]+:")
# What clients link in any text: a scheme URL or a www. host (no zero-width space inside).
_CLIENT_LINK = re.compile(r"(?i)(?:https?|ftp|mailto|javascript|data|file|vbscript):\S|www\.\w")
# What the server links in mrkdwn that is not verbatim.
_BARE_DOMAIN = re.compile(r"(?i)\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}(?![\w@])")
_CHANNEL = re.compile(r"(?<![\w&])#[\w-]+")
_AT_NAME = re.compile(r"(?<![^\W_])@[\w.-]+")


@dataclass
class Reading:
    """What a client shows: the visible text and every piece of markup it found."""

    visible: str
    markup: list[tuple[str, str]] = field(default_factory=list)

    def kinds(self) -> set[str]:
        """The kinds of markup found (``link``, ``mention``, ``bold``...)."""
        return {kind for kind, _ in self.markup}


def _decode(text: str) -> str:
    for entity, char in _ENTITIES:
        text = text.replace(entity, char)
    return text


def read_mrkdwn(text: str, *, verbatim: bool) -> Reading:
    """Read a ``mrkdwn`` text object (or the top-level ``text`` with ``mrkdwn`` on)."""
    reading = Reading("")
    pieces: list[str] = []
    last = 0
    for match in _CONTROL.finditer(text):
        pieces.append(_decode(text[last : match.start()]))
        inner = match.group(1)
        target, _, label = inner.partition("|")
        if target.startswith("!"):
            reading.markup.append(("mention", target))
            pieces.append(label or "@" + target[1:].split("^")[0])
        elif target.startswith("@"):
            reading.markup.append(("mention", target))
            pieces.append(label or target)
        elif target.startswith("#"):
            reading.markup.append(("channel", target))
            pieces.append(label or target)
        else:
            reading.markup.append(("link", _decode(target)))
            pieces.append(_decode(label or target))
        last = match.end()
    pieces.append(_decode(text[last:]))
    plain_parts = _CONTROL.sub(" ", text)  # markup is looked for outside control sequences
    for kind, pattern in _EMPHASIS.items():
        reading.markup.extend((kind, m.group()) for m in pattern.finditer(plain_parts))
    reading.markup.extend(("code", m.group()) for m in _CODE.finditer(plain_parts))
    reading.markup.extend(("quote", m.group()) for m in _QUOTE.finditer(plain_parts))
    reading.markup.extend(("emoji", m.group()) for m in _EMOJI.finditer(plain_parts))
    decoded = _decode(plain_parts)
    reading.markup.extend(("link", m.group()) for m in _CLIENT_LINK.finditer(decoded))
    if not verbatim:
        reading.markup.extend(("link", m.group()) for m in _BARE_DOMAIN.finditer(decoded))
        reading.markup.extend(("channel", m.group()) for m in _CHANNEL.finditer(decoded))
        reading.markup.extend(("mention", m.group()) for m in _AT_NAME.finditer(decoded))
    reading.visible = "".join(pieces)
    return reading


def read_plain_text(text: str, *, emoji: bool) -> Reading:
    """Read a ``plain_text`` object; raises when the two entity readings would differ."""
    literal, decoded = text, _decode(text)
    if literal != decoded:
        raise AssertionError(f"plain_text reads differently if Slack decodes entities: {text!r}")
    reading = Reading(literal)
    reading.markup.extend(("link", m.group()) for m in _CLIENT_LINK.finditer(literal))
    if emoji:
        reading.markup.extend(("emoji", m.group()) for m in _EMOJI.finditer(literal))
    return reading


def read_fallback(text: str, *, mrkdwn: bool) -> Reading:
    """Read the top-level ``text``: notifications and screen readers show it.

    With ``mrkdwn: false`` Slack still finds control sequences and decodes the three
    entities; nothing else is markup (a notification shows no emphasis).
    """
    if mrkdwn:
        return read_mrkdwn(text, verbatim=False)
    reading = read_mrkdwn(text, verbatim=True)
    reading.markup = [(k, v) for k, v in reading.markup if k in ("link", "mention", "channel")]
    return reading


def read_text_object(obj: dict[str, object]) -> Reading:
    """Read a Block Kit text object of either type."""
    text = obj["text"]
    assert isinstance(text, str)
    if obj["type"] == "plain_text":
        return read_plain_text(text, emoji=bool(obj.get("emoji", True)))
    assert obj["type"] == "mrkdwn", obj
    return read_mrkdwn(text, verbatim=bool(obj.get("verbatim", False)))
