"""Escaping for chat markups, judged by a real Markdown parser, and the chat helpers.

markdown-it (the parser behind the Adaptive Cards JavaScript renderer) with linkify, tables and
strikethrough on is stricter than any of the chat services: if it finds no link, image,
emphasis or block markup in an escaped value, the services do not either.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token
from notirouter.plugins.chat.common import fit, fit_facts, json_len, safe_link, utf16_len

from notirouter.api.escape import (
    ZERO_WIDTH_SPACE,
    defuse_urls,
    escape_markdown,
    escape_plain,
    escape_slack,
    escape_teams,
    neutralise_at_mentions,
)
from notirouter.api.escape_chat import escape_discord, escape_mattermost
from notirouter.api.message import Fact, Message, Severity
from notirouter.redaction import url_secrets
from tests.chat_helpers import CHAT_SINKS, build_sink, walk_strings
from tests.chat_messages import ALL, DIGEST, HOSTILE, HOSTILE_LINKED

HOSTILE_SNIPPETS = [
    "[login](https://evil.example/a)",
    "![pixel](https://evil.example/p.png)",
    "<https://evil.example>",
    "https://evil.example/path and www.evil.example",
    "**bold** __bold__ *it* _it_ ~~strike~~ `code`",
    "# heading\n## heading",
    "> quote\n- item\n+ item\n* item\n1. item\n2) item",
    "title\n===\nsub\n---",
    "| a | b |\n|---|---|\n| 1 | 2 |",
    "[ref]: https://evil.example\n[ref]",
    "\\[already\\] \\*escaped\\* \\\\",
    "<b>html</b> <img src=x onerror=alert(1)>",
    "a *b [c](https://e.example) d* e",
    '<a href="//evil.example/login">Reset your password</a> <img src="//evil.example/p.gif">',
    "<smb://evil.example/share> <ms-word:ofe|u|https://evil.example/a.docx> </b>",
    "_https://evil.example/sso _www.evil.example *www.evil.example (https://evil.example)",
]
# Token types a value may produce: a plain paragraph of text, with line breaks.
PLAIN_TOKENS = {"paragraph_open", "paragraph_close", "inline", "text", "softbreak", "hardbreak"}


def parser(markup: str = "markdown") -> MarkdownIt:
    """A parser at least as eager as the services that read ``markup``.

    Teams documents a subset without tables, but a MessageCard renders HTML (``<a>``,
    ``<img>``), so HTML is on for it too; Mattermost and Discord get everything.
    """
    if markup == "teams":
        md = MarkdownIt("commonmark", {"linkify": True, "html": True})
        md.enable(["linkify", "strikethrough"])
    else:
        md = MarkdownIt("commonmark", {"linkify": True}).enable(
            ["linkify", "strikethrough", "table"]
        )
    # Bare domains ("evil.example") are left alone on purpose: defusing them would break
    # copying a hostname out of an alert. Scheme URLs and "www." hosts must not link.
    md.linkify.set({"fuzzy_link": False})
    return md


def tokens(md: MarkdownIt, text: str) -> Iterator[Token]:
    for token in md.parse(text):
        yield token
        yield from token.children or ()


ESCAPES = {
    "markdown": escape_markdown,
    "teams": escape_teams,
    "mattermost": escape_mattermost,
    "discord": escape_discord,
}


@pytest.mark.parametrize("markup", sorted(ESCAPES))
@pytest.mark.parametrize("snippet", HOSTILE_SNIPPETS)
def test_escaped_text_is_plain_markdown(markup: str, snippet: str) -> None:
    md, escape = parser(markup), ESCAPES[markup]
    found = {token.type for token in tokens(md, escape(snippet))}
    assert found <= PLAIN_TOKENS, found


@pytest.mark.parametrize("snippet", HOSTILE_SNIPPETS)
def test_escaped_text_reads_the_same(snippet: str) -> None:
    # What the reader sees is the original text, zero-width spaces aside.
    for markup, escape in ESCAPES.items():
        md = parser(markup)
        rendered = " ".join(
            t.content for t in tokens(md, escape(snippet)) if t.type in ("text", "html_inline")
        ).replace(ZERO_WIDTH_SPACE, "")
        assert rendered.split() == snippet.split(), markup


def test_teams_escaping_keeps_windows_paths_and_ordinary_punctuation() -> None:
    assert escape_teams("C:\\Windows\\System32\\cmd.exe") == "C:\\Windows\\System32\\cmd.exe"
    assert escape_teams("srv-01.corp.local (10.0.0.1)") == "srv-01.corp.local (10.0.0.1)"
    assert escape_teams("a\\*b") == "a\\\\\\*b"
    assert escape_teams("snake_case") == "snake\\_case"


@pytest.mark.parametrize(
    "escape", [escape_markdown, escape_teams, escape_slack, escape_plain, defuse_urls]
)
def test_urls_never_autolink(escape: Callable[[str], str]) -> None:
    text = escape("go to https://evil.example or www.evil.example or JavaScript:alert(1)")
    assert not re.search(r"(?i)(https|javascript)\\?:", text)
    assert not re.search(r"(?i)www\\?\.", text)
    # "_" is a word character, but GFM autolinks right after it all the same.
    text = escape("_https://evil.example/sso _www.evil.example x_www.evil.example")
    assert not re.search(r"(?i)https\\?:", text)
    assert not re.search(r"(?i)www\\?\.", text)
    # Nor may a protocol-relative link survive: a web client resolves it against https.
    assert "//evil" not in escape('<a href="//evil.example/login"> //evil.example')


@pytest.mark.parametrize("escape", [escape_markdown, escape_teams, escape_slack, escape_plain])
def test_mentions_are_neutralised(escape: Callable[[str], str]) -> None:
    text = escape("@channel @here @all @everyone <!channel> <!here> <!everyone> <@U024BE7LH>")
    assert not re.search(r"@(channel|here|all|everyone)|<[!@]", text)


# What a chat client would read as a mention, in any of the four services (Discord shows a
# backslash-escaped "\@everyone" as text).
LIVE_MENTION = re.compile(r"(?<!\\)@(channel|here|all|everyone)\b|(?<!\\)<[!@#]")


@pytest.mark.parametrize("sink_type", CHAT_SINKS)
@pytest.mark.parametrize("name", sorted(ALL))
def test_no_sink_renders_a_live_mention(sink_type: str, name: str) -> None:
    for path, text in walk_strings(build_sink(sink_type).render(ALL[name])):
        assert not LIVE_MENTION.search(text), (path, text)


# What a rendered field must never contain: a link, an image, or raw HTML.
LIVE_TOKENS = {"link_open", "image", "html_inline", "html_block"}
# Fields that hold a URL the sink chose (message.link, validated) rather than text.
URL_FIELDS = re.compile(r"(^|\.)(url|uri|title_link)$")


def is_markdown(sink_type: str, path: str) -> bool:
    """Whether the service renders this field as Markdown (the others are plain text)."""
    if sink_type == "teams":  # TextRuns, fallbackText, the preview and action titles are plain
        plain = ("inlines" in path, "fallbackText" in path, "actions" in path, path == "summary")
        return not any(plain)
    if sink_type == "mattermost":  # field titles, a linked title and the fallback are plain
        return path == "text" or path.endswith((".text", ".value"))
    return sink_type == "discord"  # Slack mrkdwn has no [label](url) syntax


@pytest.mark.parametrize("sink_type", CHAT_SINKS)
@pytest.mark.parametrize("message", [HOSTILE, DIGEST], ids=["message", "digest"])
def test_hostile_message_yields_no_link_anywhere(sink_type: str, message: Message) -> None:
    md = parser("teams" if sink_type == "teams" else "markdown")
    for path, text in walk_strings(build_sink(sink_type).render(message)):
        assert not URL_FIELDS.search(path), path  # javascript: is never a link
        if path.endswith(("$schema", "@context")):
            continue  # the card's own schema identifiers
        if sink_type == "mattermost" and not is_markdown(sink_type, path):
            continue  # plain text shows a URL and links nothing (test_service_rendering.py)
        # An unescaped scheme (Mattermost writes "&#58;", Discord "\:"; both show ":").
        assert not re.search(r"(?i)(https?|javascript):", text), (path, text)
        if is_markdown(sink_type, path):
            found = {t.type for t in tokens(md, text)}
            assert not found & LIVE_TOKENS, (path, found)


# Everything GFM autolinks on its own (after "_", "*", "~", "(" as much as after a space).
AUTOLINK_BAITS = (
    "_https://evil.example/sso",
    "_www.evil.example",
    "*www.evil.example*",
    "(https://evil.example/a)",
    "~http://evil.example~",
    "x_www.evil.example",
    "__ftp://evil.example__",
    "//evil.example/login",  # protocol-relative: linkify-it links it
    '<a href="//evil.example/login">',
)
AUTOLINK_BAIT = Message(
    title=" ".join(AUTOLINK_BAITS),
    text="\n".join(AUTOLINK_BAITS),
    severity=Severity.HIGH,
    facts=tuple(Fact(name=bait, value=bait) for bait in AUTOLINK_BAITS),
)


@pytest.mark.parametrize("sink_type", CHAT_SINKS)
def test_urls_after_punctuation_never_autolink(sink_type: str) -> None:
    md = parser("teams" if sink_type == "teams" else "markdown")
    for path, text in walk_strings(build_sink(sink_type).render(AUTOLINK_BAIT)):
        if path.endswith(("$schema", "@context")):
            continue
        # Every scheme, "www." and "//host" keeps its zero-width break, whatever precedes it
        # (Mattermost and Discord escape them in their own syntax: test_service_rendering.py).
        if sink_type in ("teams", "slack"):
            bare = text.replace("\\", "")
            assert not re.search(r"(?i)(https?|ftp):|www\.|(?<!:)//[^\s/]", bare), (path, text)
        if is_markdown(sink_type, path):
            found = {t.type for t in tokens(md, text)}
            assert not found & LIVE_TOKENS, (path, found)


@pytest.mark.parametrize("sink_type", CHAT_SINKS)
def test_hostile_link_label_stays_text(sink_type: str) -> None:
    rendered = build_sink(sink_type).render(HOSTILE_LINKED)
    urls = [text for path, text in walk_strings(rendered) if URL_FIELDS.search(path)]
    assert urls
    assert set(urls) == {HOSTILE_LINKED.link}
    for path, text in walk_strings(rendered):
        # Plain text shows a URL, it does not link it.
        own = URL_FIELDS.search(path) or path.endswith(("$schema", "@context"))
        if not own and is_markdown(sink_type, path):
            assert not re.search(r"(?i)https?:(?!//app\.sekoia\.io/)", text), (path, text)


@pytest.mark.parametrize("sink_type", CHAT_SINKS)
def test_empty_link_label_still_gives_something_to_click(sink_type: str) -> None:
    message = ALL["alert"].model_copy(update={"link_label": "  "})
    rendered = str(build_sink(sink_type).render(message))
    assert "Open" in rendered
    assert "[](" not in rendered


def test_safe_link() -> None:
    assert safe_link("https://app.sekoia.io/operations/alerts/AL1") == (
        "https://app.sekoia.io/operations/alerts/AL1"
    )
    assert safe_link("http://x.example/a?b=1#c") == "http://x.example/a?b=1#c"
    assert safe_link("https://x.example/a)b>c|d e") is None  # whitespace: refused
    assert safe_link("https://x.example/a)b>c|d") == "https://x.example/a%29b%3Ec%7Cd"
    for bad in (None, "", "javascript:alert(1)", "data:text/html,x", "ftp://x", "//x.example"):
        assert safe_link(bad) is None


@pytest.mark.parametrize("measure", [len, json_len, utf16_len])
@pytest.mark.parametrize("escape", [escape_markdown, escape_teams, escape_slack])
def test_fit_respects_the_limit_after_escaping(
    escape: Callable[[str], str], measure: Callable[[str], int]
) -> None:
    text = '*_[]\\"🔥 @here https://x.example\n' * 500
    for limit in (0, 5, 20, 100, 1_000, 5_000):
        cut = fit(text, limit, escape, measure)
        assert measure(cut) <= limit
        if limit >= 100:
            assert cut.endswith(escape("… [truncated]"))
    assert fit("short", 100, escape, measure) == escape("short")


def test_fit_facts_keeps_order_and_counts_the_rest() -> None:
    facts = [Fact(name=f"n{i}", value="v" * 100) for i in range(10)]
    rows, omitted = fit_facts(
        facts, escape=escape_plain, name_limit=10, value_limit=50, budget=200, max_rows=8
    )
    assert [name for name, _ in rows] == ["n0", "n1", "n2", "n3"]
    assert all(len(value) <= 50 for _, value in rows)
    assert omitted == 6
    rows, _ = fit_facts(
        [Fact(name="", value="  ")], escape=escape_plain, name_limit=9, value_limit=9, budget=99,
        max_rows=9,
    )  # fmt: skip
    assert rows == [("—", "—")]


def test_url_secrets_cover_path_tokens_and_query_values() -> None:
    url = "https://h.example/webhooks/123456789012345678/AbCdEfGhIjKlMnOpQrSt?sig=ZyXwVuTsRqPoNmLk1&x=1"
    found: Any = url_secrets(url)
    assert found[0] == url
    for part in ("123456789012345678", "AbCdEfGhIjKlMnOpQrSt", "ZyXwVuTsRqPoNmLk1"):
        assert part in found
    assert "webhooks" not in found


def test_chat_mentions_spare_email_addresses() -> None:
    text = "mail analyst@example.com or @channel (@here) _@all a.b@c.example"
    assert neutralise_at_mentions(text) == (
        "mail analyst@example.com or @\u200bchannel (@\u200bhere) _@\u200ball a.b@c.example"
    )
    for escape in (escape_teams, escape_mattermost, escape_discord):
        assert ZERO_WIDTH_SPACE not in escape("analyst@example.com"), escape
