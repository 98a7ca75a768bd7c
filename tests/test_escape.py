"""Escaping untrusted text: mentions inert, links dead, markup literal."""

from __future__ import annotations

import pytest

from notirouter.api.escape import (
    TRUNCATION_MARKER,
    ZERO_WIDTH_SPACE,
    defuse_urls,
    escape_html,
    escape_markdown,
    escape_plain,
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


@pytest.mark.parametrize(
    "address", ["admin@example.com", "first.last+tag@soc.example.org", "a1@www.example.com"]
)
def test_email_addresses_stay_exactly_as_typed(address: str) -> None:
    # Not even an invisible character: a copied address must be the real one.
    for escape in (neutralise_mentions, escape_plain, escape_slack, defuse_urls):
        assert escape(f"mail {address} now") == f"mail {address} now"


@pytest.mark.parametrize("text", ["(@here)", "x,@channel", "_@all_", "\n@everyone", "*@here*"])
def test_a_mention_after_punctuation_is_still_neutralised(text: str) -> None:
    assert "@" + ZERO_WIDTH_SPACE in neutralise_mentions(text)


def test_markdown_links_and_images_do_not_render() -> None:
    text = escape_markdown(
        "[click](https://evil.example/x) ![img](http://evil/i.png) **bold** `code`"
    )
    assert "[click](" not in text and "![img](" not in text
    assert "https:" not in text and "**" not in text and "`code`" not in text


def test_markdown_escape_keeps_plain_text_readable() -> None:
    assert escape_markdown("srv-01 down") == "srv\\-01 down"


def test_slack_escape_blocks_links_and_mentions() -> None:
    text = escape_slack("<https://evil|login> <!channel> a & b @here")
    assert "<" not in text and ">" not in text
    assert "&lt;!channel&gt;" in text and "a &amp; b" in text
    assert "@" + ZERO_WIDTH_SPACE + "here" in text


def test_slack_escape_shows_a_typed_entity_as_typed() -> None:
    # "&" first: "&lt;" typed by an attacker must read "&lt;", not "<".
    assert escape_slack("&lt;b&gt;") == "&amp;lt;b&amp;gt;"


def test_slack_escape_adds_nothing_around_formatting_signs() -> None:
    # A zero-width space next to "*" does not stop Slack's formatting (it can start it), and
    # corrupts a copied "2*3": untrusted text goes to plain_text objects instead.
    assert escape_slack("2*3 snake_case ~/x `id`") == "2*3 snake_case ~/x `id`"


def test_plain_escape_shows_a_typed_entity_whether_or_not_it_is_decoded() -> None:
    text = escape_plain("&lt;b&gt; &#60; R&D a < b")
    assert text == "&\u200blt;b&\u200bgt; &\u200b#60; R&D a < b"


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
