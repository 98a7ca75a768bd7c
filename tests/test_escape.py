"""Escaping untrusted text: mentions inert, links dead, markup literal."""

from __future__ import annotations

import pytest

from notirouter.escape import (
    TRUNCATION_MARKER,
    ZERO_WIDTH_SPACE,
    escape_html,
    escape_markdown,
    escape_slack,
    neutralise_mentions,
    truncate,
    truncate_utf8,
)

MENTIONS = [
    "@channel",
    "@here",
    "@all",
    "@everyone",
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<@U123ABC>",
]


@pytest.mark.parametrize("mention", MENTIONS)
def test_mentions_are_neutralised_but_readable(mention: str) -> None:
    text = neutralise_mentions(f"host {mention} down")
    assert mention not in text
    assert text.replace(ZERO_WIDTH_SPACE, "") == f"host {mention} down"


def test_email_addresses_stay_readable() -> None:
    assert (
        neutralise_mentions("admin@example.com").replace(ZERO_WIDTH_SPACE, "")
        == "admin@example.com"
    )


def test_markdown_links_and_images_do_not_render() -> None:
    text = escape_markdown(
        "[click](https://evil.example/x) ![img](http://evil/i.png) **bold** `code`"
    )
    assert "[click](" not in text and "![img](" not in text
    assert "https:" not in text and "**" not in text and "`code`" not in text


def test_markdown_escape_keeps_plain_text_readable() -> None:
    assert escape_markdown("srv-01 down") == "srv\\-01 down"


def test_slack_escape_blocks_links_mentions_and_formatting() -> None:
    text = escape_slack("<https://evil|login> <!channel> a & b *bold* _it_ ~s~ `c`")
    assert "<" not in text and ">" not in text
    assert "&lt;!channel&gt;" in text and "a &amp; b" in text
    assert "*bold*" not in text and "_it_" not in text


def test_html_escape() -> None:
    assert escape_html('<img src=x onerror="a">&') == "&lt;img src=x onerror=&quot;a&quot;&gt;&amp;"


def test_truncate_marks_the_cut() -> None:
    assert truncate("short", 10) == "short"
    cut = truncate("x" * 100, 30)
    assert len(cut) == 30 and cut.endswith(TRUNCATION_MARKER)


def test_truncate_utf8_never_splits_a_character() -> None:
    cut = truncate_utf8("é" * 100, 51)
    assert len(cut.encode()) <= 51
    assert cut.endswith(TRUNCATION_MARKER)
