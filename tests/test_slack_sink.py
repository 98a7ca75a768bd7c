"""The slack sink: Block Kit within every limit, inert hostile text, Slack's answers."""

from __future__ import annotations

import re
from typing import Any

import pytest
from notirouter.plugins.chat.slack import split_sections
from slack_sdk.models.blocks import Block

from notirouter.api.message import Severity
from notirouter.api.sink import Outcome
from tests.chat_helpers import SECRET, build_sink, walk_strings
from tests.chat_messages import ALERT, ALL, HOSTILE, HUGE
from tests.loopback import LoopbackServer, Reply

# Slack's documented limits (characters), checked here since slack_sdk misses some of them.
HEADER_MAX = 150
SECTION_TEXT_MAX = 3_000
FIELDS_MAX = 10
FIELD_TEXT_MAX = 2_000
CONTEXT_ELEMENTS_MAX = 10
BLOCKS_MAX = 50
BUTTON_TEXT_MAX = 75
BUTTON_URL_MAX = 3_000
TEXT_MAX = 40_000
# Beyond about 13,200 characters of block text Slack has answered msg_blocks_too_long.
BLOCK_TEXT_TOTAL_MAX = 13_000


def check_block_kit(payload: dict[str, Any]) -> None:
    """Every limit of a webhook message, with slack_sdk's own validation of each block."""
    assert isinstance(payload["text"], str)
    assert payload["text"].strip()
    assert len(payload["text"]) <= TEXT_MAX
    blocks = payload["blocks"]
    assert 0 < len(blocks) <= BLOCKS_MAX
    total = 0
    for block in blocks:
        parsed = Block.parse(block)
        assert parsed is not None, block
        parsed.validate_json()
        assert parsed.to_dict() == block  # slack_sdk knows every key we send
        kind = block["type"]
        if kind == "header":
            assert block["text"]["type"] == "plain_text"
            assert 0 < len(block["text"]["text"]) <= HEADER_MAX
        elif kind == "section":
            if "text" in block:
                assert len(block["text"]["text"]) <= SECTION_TEXT_MAX
            fields = block.get("fields", [])
            assert len(fields) <= FIELDS_MAX
            assert all(0 < len(field["text"]) <= FIELD_TEXT_MAX for field in fields)
        elif kind == "context":
            assert len(block["elements"]) <= CONTEXT_ELEMENTS_MAX
        elif kind == "actions":
            for button in block["elements"]:
                assert len(button["text"]["text"]) <= BUTTON_TEXT_MAX
                assert len(button["url"]) <= BUTTON_URL_MAX
        total += sum(len(text) for path, text in walk_strings(block) if path.endswith("text"))
    assert total <= BLOCK_TEXT_TOTAL_MAX


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_message_is_within_block_kit_limits(name: str) -> None:
    check_block_kit(build_sink("slack").render(ALL[name]))


def test_limits_are_really_checked() -> None:
    payload = build_sink("slack").render(ALERT)
    payload["blocks"][0]["text"]["text"] = "x" * (HEADER_MAX + 1)
    with pytest.raises(Exception, match="150"):
        check_block_kit(payload)
    payload = build_sink("slack").render(ALERT)
    payload["blocks"] = payload["blocks"] * 20
    with pytest.raises(AssertionError):
        check_block_kit(payload)


def test_alert_layout() -> None:
    payload = build_sink("slack").render(ALERT)
    header, context, section, fields, actions = payload["blocks"]
    assert header["text"]["text"] == "🔴 CRITICAL: " + ALERT.title
    assert context["elements"][0]["text"] == "🔴 *CRITICAL* severity"
    assert section["text"] == {"type": "plain_text", "text": ALERT.text, "emoji": False}
    urgency = {"type": "plain_text", "text": "Urgency\n82 (Major)", "emoji": False}
    assert fields["fields"][0] == urgency
    assert actions["elements"][0]["url"] == ALERT.link
    assert actions["elements"][0]["text"]["text"] == "Open in Sekoia.io"
    assert payload["text"] == "🔴 CRITICAL: " + ALERT.title
    assert payload["mrkdwn"] is False
    assert payload["unfurl_links"] is False
    assert payload["unfurl_media"] is False


def test_huge_message_says_what_was_cut_and_links_to_the_whole() -> None:
    payload = build_sink("slack").render(HUGE)
    sections = [b for b in payload["blocks"] if b["type"] == "section" and "text" in b]
    text = "\n".join(section["text"]["text"] for section in sections)
    assert text.endswith("… [truncated]")
    assert len(text) > SECTION_TEXT_MAX  # more than one section's worth is shown
    note = payload["blocks"][2 + len(sections)]["elements"][0]
    assert note["verbatim"] is True
    assert note["text"].endswith(f" characters to fit Slack's limits. Full text: <{HUGE.link}>")
    assert "more facts not shown" in payload["blocks"][-2]["elements"][0]["text"]


def test_a_long_text_is_shown_whole_over_several_sections() -> None:
    paragraph = "A line of the alert's details, as Sekoia.io gave it.\n" * 40  # 2,120
    message = ALERT.model_copy(update={"text": (paragraph + "\n") * 4, "facts": ()})
    payload = build_sink("slack").render(message)
    check_block_kit(payload)
    sections = [b["text"]["text"] for b in payload["blocks"] if b["type"] == "section"]
    assert len(sections) == 4
    assert "\n\n".join(sections) == message.text.strip()  # split at paragraphs, nothing cut


def test_each_severity_has_its_own_word_and_style() -> None:
    headers, lines = set(), set()
    for severity in Severity:
        message = ALERT.model_copy(update={"severity": severity})
        blocks = build_sink("slack").render(message)["blocks"]
        assert blocks[0]["text"]["text"].split(": ")[0].split()[-1] == severity.label
        headers.add(blocks[0]["text"]["text"])
        lines.add(blocks[1]["elements"][0]["text"])
    assert len(headers) == len(lines) == len(Severity)
    high, critical = (
        build_sink("slack").render(ALERT.model_copy(update={"severity": s}))["text"]
        for s in (Severity.HIGH, Severity.CRITICAL)
    )
    assert "HIGH" in high and "CRITICAL" in critical  # not only the emoji's colour


def test_hostile_mrkdwn_cannot_link_or_mention() -> None:
    payload = build_sink("slack").render(HOSTILE)
    assert not any(block["type"] == "actions" for block in payload["blocks"])
    for path, text in walk_strings(payload):
        # No <!channel>, <@U…> or <url|label> can form: mrkdwn has "&lt;", plain_text a "<"
        # followed by a zero-width space.
        assert not re.search("<(?!\u200b)", text), path
        assert "https://" not in text, path
        for mention in ("@channel", "@here", "@everyone", "@all"):
            assert mention not in text, path
    assert "<\u200b!channel>" in payload["blocks"][2]["text"]["text"]
    assert "&lt;!here&gt;" in payload["text"]
    # Every value from the message is plain text: mrkdwn cannot escape "*" or "_".
    for block in payload["blocks"][2:]:
        for obj in [block.get("text"), *block.get("fields", []), *block.get("elements", [])]:
            assert obj is None or obj["type"] in ("plain_text", "button"), obj


def test_rate_limit_defaults_to_one_per_second() -> None:
    assert build_sink("slack").rate_limit == 1.0
    assert build_sink("slack", rate_limit=0.2).rate_limit == 0.2


def test_channel_override_is_not_an_option() -> None:
    # App webhooks ignore channel/username/icon: accepting them would only mislead.
    with pytest.raises(ValueError, match="channel"):
        build_sink("slack", channel="#soc")


@pytest.mark.parametrize(
    ("reply", "outcome"),
    [
        (Reply(200, "ok"), Outcome.DELIVERED),
        (Reply(200, "<html>Sign in to your proxy</html>"), Outcome.PERMANENT),
        (Reply(400, "invalid_payload"), Outcome.PERMANENT),
        (Reply(400, "no_text"), Outcome.PERMANENT),
        (Reply(400, "invalid_blocks"), Outcome.PERMANENT),
        (Reply(403, "action_prohibited"), Outcome.PERMANENT),
        (Reply(404, "channel_not_found"), Outcome.PERMANENT),
        (Reply(404, "no_service"), Outcome.PERMANENT),
        (Reply(410, "channel_is_archived"), Outcome.PERMANENT),
        (Reply(429, "rate_limited", {"Retry-After": "30"}), Outcome.RETRY),
        (Reply(500, "rollup_error"), Outcome.RETRY),
    ],
)
async def test_slack_answers(
    loopback: LoopbackServer, make_sink: Any, reply: Reply, outcome: Outcome
) -> None:
    loopback.reply(reply)
    sink = make_sink("slack", url=f"{loopback.url}/services/T000/B000/{SECRET}")
    result = await sink.send(ALERT)
    assert result.outcome is outcome
    assert SECRET not in result.detail
    if reply.status != 200:
        assert reply.body in result.detail  # Slack's error code says what is wrong
    if reply.status == 429:
        assert result.retry_after == 30.0
    request = loopback.requests[0]
    assert request.path == f"/services/T000/B000/{SECRET}"
    check_block_kit(request.json())


def test_a_hard_split_keeps_a_sign_with_its_zero_width_space() -> None:
    text = "x" * 9 + "<\u200b" + "y" * 20  # no space or line to split at
    parts = split_sections(text, 10)
    assert parts[0] == "x" * 9 and parts[1].startswith("<\u200b")
    assert "".join(parts) == text and all(len(part) <= 10 for part in parts)
