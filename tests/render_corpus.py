"""Hostile and ordinary values, and the check that a service shows them as typed and nothing more.

:func:`check_field` puts every value of the corpus, in turn, into one field of a message that is
otherwise plain, renders the sink's payload with the service's own renderer, and renders the
same message with a harmless placeholder in that field. The two renderings must have the same
elements and the same links, and the visible text must be the placeholder's with the value,
as typed, in the placeholder's place: untrusted text adds no link, image, mention, emphasis,
code, heading or HTML, and loses or gains no character (no stray backslash, no entity).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from notirouter.plugins.chat.common import one_line

from notirouter.api.escape import ZERO_WIDTH_SPACE
from notirouter.api.message import Fact, Message, Severity
from notirouter.routing.pipeline import reveal_message
from tests.chat_helpers import build_sink
from tests.chat_messages import SEKOIA_LINK
from tests.service_renderers import Rendered, ServiceRenderers, read_html

EVIL = "https://evil.example/login"
# What attackers write, class by class: each must show as the literal text.
HOSTILE: dict[str, str] = {
    "markdown-link": f"[Reset your password]({EVIL})",
    "image": f"![pixel]({EVIL}.png)",
    "angle-autolink": f"<{EVIL}>",
    "numeric-host-autolink": "<1540296962:/login>",
    "angle-email": "<analyst@example.com>",
    "slack-user": "<@U024BE7LH>",
    "slack-specials": "<!channel> <!here> <!everyone> <#C024BE7LH>",
    "slack-link": f"<{EVIL}|Click here>",
    "at-mentions": "@all @here @channel @everyone @jdoe",
    "underscore-mention": "_@channel",
    "mattermost-channel": "~channel ~town-square",
    "discord-ids": "<@123456789012345678> <@!1234> <@&1234> <#1234> <:pepe:1234> <t:1767261600:R>",
    "bare-url": EVIL,
    "www-host": "www.evil.example/login",
    "bare-domain-path": "x *evil.com/login _evil.com/a",
    "protocol-relative": "//evil.example/login",
    "javascript": "javascript:alert(document.cookie)",
    "emphasis": "**bold** __under__ *it* _it_ ~~strike~~ ***both***",
    "code": "`code` ``two`` ```fence```",
    "spoiler": "||spoiler||",
    "html": '<b>bold</b> <img src=x onerror="alert(1)"> <script>alert(1)</script> </p>',
    "html-link": '<a href="https://evil.example">Reset</a>',
    "entities": "&lt;b&gt; &amp; &#64;channel &#x3C;script&#x3E; &nbsp; &colon;",
    "heading": "# Heading",
    "subtext": "-# small print",
    "quote": "> quoted",
    "bullet": "- item",
    "numbered": "1. item",
    "table": "| a | b |",
    "hashtag": "#hashtag #incident-42",
    "emoticons": ":smile: :) ;) :D :p <3 </3 x-d",
    "latex": "$x^2$ and $$y$$",
    "card-function": "{{DATE(2026-01-14T15:06:57Z, SHORT)}} {{TIME(2026-01-14T15:06:57Z)}}",
    "backslashes": "\\[not a link\\] \\*x\\* \\\\ \\@channel end\\",
    "bidi": "invoice\u202efdp.exe \u2066isolate\u2069 \u200emark\u200f \u061carabic",
    "invisible": "a\u200bb\u2060c\ufeffd\u00ade",
}
# What SOC analysts read and copy: it must show exactly as typed (no zero-width space either).
ORDINARY: dict[str, str] = {
    "time": "2026-01-14T15:06:57Z",
    "windows-path": "C:\\Windows\\System32\\cmd.exe",
    "unc-path": "\\\\srv-01\\share\\a_b\\",
    "key-value": "a:b key:value port 8080:80",
    "email": "analyst@example.com",
    "host": "srv-web-01.corp.local (10.0.4.12)",
    "url-with-underscores": "https://intranet.example/a_b_c?x_y=1",
    "punctuation": "50% off; a+b=c? (x) [y] {z} 'q' \"dq\" ^ ~ | !",
    "command-line": "powershell.exe -nop -w hidden -c IEX (New-Object Net.WebClient)",
    "non-latin": "naïve Ω 💥 日本語",
}
MULTI_LINE: dict[str, str] = {
    "block-markup": "# Heading\n> quote\n- item\n+ item\n1. item\n2) item\n===\n---\n    indented",
    "paragraphs": "First line\nsecond line\n\nNew paragraph: 15:06:57Z",
    "table-lines": "| a | b |\n|---|---|\n| 1 | 2 |",
}
# Sinks may put a zero-width space where it keeps a value inert and no one copies it: after
# the "@" of a mention. Teams also breaks URL schemes with one (its clients' Markdown is not
# one known renderer): listed per sink in the tests.
FIELDS = ("title", "text", "fact_name", "fact_value", "link_label")
MULTI_LINE_FIELDS = ("text", "fact_value")
BASE = Message(
    title="Base title",
    text="Base text",
    severity=Severity.HIGH,
    link=SEKOIA_LINK,
    link_label="Open in Sekoia.io",
    facts=(Fact(name="Base name", value="Base value"), Fact(name="Rule", value="R1")),
)


def corpus(field: str) -> dict[str, str]:
    """Every value to try in ``field``."""
    values = {**HOSTILE, **{f"ordinary:{k}": v for k, v in ORDINARY.items()}}
    if field in MULTI_LINE_FIELDS:
        values |= {f"lines:{k}": v for k, v in MULTI_LINE.items()}
    return values


def placeholder(value: str) -> tuple[str, list[str]]:
    """A harmless stand-in with the value's line structure, and its per-line tokens."""
    tokens = [
        f"PLACEHOLDER{chr(65 + i)}" if line else "" for i, line in enumerate(value.split("\n"))
    ]
    return "\n".join(tokens), tokens


def message_with(field: str, value: str) -> Message:
    """:data:`BASE` with ``value`` in ``field``, as the pipeline hands it to sinks."""
    if field == "fact_name":
        update: dict[str, Any] = {"facts": (Fact(name=value, value="Base value"), *BASE.facts[1:])}
    elif field == "fact_value":
        update = {"facts": (Fact(name="Base name", value=value), *BASE.facts[1:])}
    else:
        update = {field: value}
    return reveal_message(BASE.model_copy(update=update))


def shown(field: str, value: str) -> str:
    """What the reader must see for ``value`` in ``field``: as typed, invisibles revealed."""
    value = message_with("title", value).title  # the pipeline's reveal, nothing else
    return value if field in MULTI_LINE_FIELDS else one_line(value)


@dataclass
class Part:
    """One piece of a payload and how the service shows it."""

    kind: str | None  # a renderer of tests/renderers/render.js; None: plain text
    value: Any
    link: str | None = None  # the piece is the label of this link (a title with title_link)


Parts = Callable[[dict[str, Any]], list[Part]]


def render_payloads(
    renderers: ServiceRenderers, payloads: Sequence[dict[str, Any]], parts: Parts
) -> list[Rendered]:
    """Every payload rendered piece by piece, in one round trip."""
    pieces = [parts(payload) for payload in payloads]
    requests = [(p.kind, p.value) for group in pieces for p in group if p.kind]
    rendered = iter(renderers.render_requests(requests))
    results = []
    for group in pieces:
        sections = []
        errors: list[str] = []
        for part in group:
            if part.kind:
                piece = next(rendered)
                body, errors = piece.html, errors + piece.errors
            else:
                body = html.escape(str(part.value))
            if part.link:
                body = f'<a href="{html.escape(part.link)}">{body}</a>'
            sections.append(f"<section>{body}</section>")
        results.append(read_html("".join(sections), errors))
    return results


def check_field(
    renderers: ServiceRenderers,
    sink_type: str,
    field: str,
    parts: Parts,
    zero_width_allowed: Callable[[str], bool] = lambda name: False,
) -> None:
    """Every corpus value in ``field`` of ``sink_type`` shows as typed, and nothing more."""
    sink = build_sink(sink_type)
    values = corpus(field)
    payloads = []
    for value in values.values():
        stand_in, _ = placeholder(value)
        payloads += [
            sink.render(message_with(field, value)),
            sink.render(message_with(field, stand_in)),
        ]
    rendered = render_payloads(renderers, payloads, parts)
    failures = []
    for index, (name, value) in enumerate(values.items()):
        got, want = rendered[2 * index], rendered[2 * index + 1]
        # A zero-width space may keep a hostile value inert; an ordinary one gets none.
        zero_width_ok = not name.startswith("ordinary:") or zero_width_allowed(name)
        problem = compare(got, want, field, value, zero_width_ok)
        if problem:
            failures.append(f"{name} {value!r}: {problem}")
    assert not failures, f"{sink_type}.{field}:\n" + "\n".join(failures)


def compare(got: Rendered, want: Rendered, field: str, value: str, zero_width_ok: bool) -> str:
    """Why ``got`` (the value) is not ``want`` (the placeholder, the value put back), or ``""``."""
    if got.errors:
        return f"renderer errors {got.errors}"
    shape = [(e.tag, sorted(e.classes)) for e in got.elements]
    if shape != [(e.tag, sorted(e.classes)) for e in want.elements]:
        extra = [f"<{e.tag} {e.attrs}>{e.text!r}" for e in got.elements if e not in want.elements]
        return f"markup differs: {extra[:6]}"
    if got.links != want.links:
        return f"links {got.links} instead of {want.links}"
    expected = want.text
    stand_in, tokens = placeholder(value)
    lines = shown(field, value).split("\n") if field in MULTI_LINE_FIELDS else [shown(field, value)]
    if field in MULTI_LINE_FIELDS:
        for token, line in sorted(zip(tokens, lines, strict=True), key=lambda t: -len(t[0])):
            if token:
                expected = expected.replace(token, line)
    else:
        expected = expected.replace(stand_in, lines[0])
    text = got.text
    if ZERO_WIDTH_SPACE in text:
        if not zero_width_ok and not _only_after_mentions(text):
            return f"zero-width space in {text!r}"
        text = text.replace(ZERO_WIDTH_SPACE, "")
    # Blank lines between pieces are layout, not content.
    text, expected = _LINES.sub("\n", text).strip(), _LINES.sub("\n", expected).strip()
    if text != expected:
        return f"shows {text!r}\n    instead of {expected!r}"
    return ""


_LINES = re.compile(r"\n+")


def _only_after_mentions(text: str) -> bool:
    """Whether every zero-width space follows the "@" of a mention (not of an address)."""
    for index, char in enumerate(text):
        if char == ZERO_WIDTH_SPACE:
            before = text[index - 2] if index >= 2 else ""
            if text[index - 1 : index] != "@" or before.isalnum():
                return False
    return True
