"""Slack: every hostile value in every field reads as its literal text, and nothing else.

Structure is slack_sdk's (``check_block_kit``); what a client shows is read with
``tests.slack_reader``, which follows Slack's documented text rules.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from notirouter.api.escape import TRUNCATION_MARKER
from notirouter.api.message import Severity
from tests.chat_helpers import build_sink, walk_strings
from tests.slack_reader import (
    ZWSP,
    Reading,
    read_fallback,
    read_mrkdwn,
    read_plain_text,
    read_text_object,
)
from tests.test_slack_sink import check_block_kit
from tests.text_corpus import (
    EXACT,
    FIELDS,
    HOSTILE,
    MULTILINE,
    ORDINARY,
    OUR_LINK,
    message_with,
    shown,
)

ONE_LINE_FIELDS = {"title", "fact_name", "link_label"}
RAW_INVISIBLE = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c\ufeff\u00ad]")


def text_objects(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Every Block Kit text object of the message, in reading order."""
    found: list[dict[str, Any]] = []
    for block in payload["blocks"]:
        if "text" in block:
            found.append(block["text"])
        found.extend(block.get("fields", []))
        for element in block.get("elements", []):
            found.append(element["text"] if element["type"] == "button" else element)
    return found


def read_blocks(payload: dict[str, Any], severity: Severity) -> str:
    """The visible text of all blocks, after checking that only our own markup is in them."""
    visible = []
    for obj in text_objects(payload):
        reading: Reading = read_text_object(obj)
        if obj["type"] == "mrkdwn":
            # Our mrkdwn is ours only: verbatim (nothing linked by Slack itself), the severity
            # in bold, and a link to the alert; never a mention.
            assert obj.get("verbatim") is True, obj
            for kind, content in reading.markup:
                if kind == "link":
                    assert content == OUR_LINK, obj
                else:
                    assert (kind, content) == ("bold", f"*{severity.label}*"), obj
        else:
            assert obj.get("emoji") is False, obj  # ":fire:" shows as typed
            assert not reading.markup, (obj, reading.markup)
        visible.append(reading.visible)
    return "\n".join(visible)


def render(field: str, value: str) -> tuple[dict[str, Any], str]:
    message = message_with(field, value)
    payload = build_sink("slack").render(message)
    check_block_kit(payload)
    return payload, read_blocks(payload, message.severity)


def expected(field: str, value: str) -> str:
    text = shown(field, value)
    if field in ONE_LINE_FIELDS:
        return " ".join(text.split())
    return text.strip()


def shows(visible: str, want: str) -> bool:
    """Whether ``want`` is shown whole, or cut with the marker where a Slack limit is lower."""
    if want in visible:
        return True
    for line in visible.splitlines():
        if not line.endswith(TRUNCATION_MARKER):
            continue
        shown = line.removesuffix(TRUNCATION_MARKER)
        shown = re.sub(r"^\W+ [A-Z]+: ", "", shown)  # the header's "🟠 HIGH: "
        if len(shown) >= 20 and want.startswith(shown):
            return True
    return False


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_value_shows_as_typed_and_nothing_else(field: str, name: str) -> None:
    value = HOSTILE[name]
    payload, visible = render(field, value)
    want = expected(field, value)
    assert shows(visible.replace(ZWSP, ""), want), (want, visible)
    # No backslash appears that was not typed, no bidi control acts.
    assert visible.count("\\") == want.count("\\")
    for _, text in _strings(payload):
        assert not RAW_INVISIBLE.search(text)
    # The only button goes to the alert.
    buttons = [e for b in payload["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert [b["url"] for b in buttons] == [OUR_LINK]


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_fallback_text_cannot_mention_or_link(field: str, name: str) -> None:
    payload, _ = render(field, HOSTILE[name])
    reading = read_fallback(payload["text"], mrkdwn=payload.get("mrkdwn", True))
    assert not reading.kinds() & {"link", "mention", "channel"}, reading.markup
    if field == "title":
        assert expected(field, HOSTILE[name]) in reading.visible.replace(ZWSP, "")


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("name", sorted(ORDINARY))
def test_ordinary_value_shows_exactly_as_typed(field: str, name: str) -> None:
    value = ORDINARY[name]
    _, visible = render(field, value)
    want = expected(field, value)
    assert shows(visible.replace(ZWSP, ""), want)
    if name in EXACT:  # not even an invisible character inside an address or a time
        assert shows(visible, want)


def test_text_keeps_paragraphs_and_line_breaks() -> None:
    _, visible = render("text", MULTILINE)
    assert MULTILINE in visible


def test_typed_entity_reads_the_same_in_header_and_text() -> None:
    message = message_with("title", "A &lt;b&gt; title").model_copy(update={"text": "&lt;b&gt;"})
    payload = build_sink("slack").render(message)
    header, *_ = text_objects(payload)
    assert "&lt;b&gt;" in read_text_object(header).visible.replace(ZWSP, "")
    assert "&lt;b&gt;" in read_blocks(payload, message.severity).replace(ZWSP, "")
    fallback = read_fallback(payload["text"], mrkdwn=payload.get("mrkdwn", True))
    assert "&lt;b&gt;" in fallback.visible.replace(ZWSP, "")


def _strings(value: Any) -> list[tuple[str, str]]:
    return list(walk_strings(value))


def test_the_reader_finds_what_slack_would_render() -> None:
    # The reader is the judge: it must see the markup the issue reported.
    hostile = "*\u200bbold*\u200b <!here> &lt;x&gt; evil.example #general"
    reading = read_mrkdwn(hostile, verbatim=False)
    assert {"bold", "mention", "link", "channel"} <= reading.kinds()
    assert "<x>" in reading.visible
    assert read_mrkdwn("evil.example #general", verbatim=True).kinds() == set()
    assert read_plain_text("go to https://evil.example", emoji=False).kinds() == {"link"}
    with pytest.raises(AssertionError):
        read_plain_text("&lt;", emoji=False)
