"""The discord sink: content and embed limits, no pings, ``wait=true``, Discord's answers."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from notirouter.api.message import Fact
from notirouter.api.sink import Outcome
from notirouter.delivery.dispatcher import attempt, sink_redactor
from tests.chat_helpers import SECRET, build_sink, walk_strings
from tests.chat_messages import ALERT, ALL, HOSTILE, HUGE
from tests.loopback import LoopbackServer, Reply
from tests.service_renderers import service_renderers

WEBHOOK_ID = "1234567890123456789"


def units(text: str) -> int:
    """UTF-16 code units: never fewer than the characters Discord counts."""
    return len(text.encode("utf-16-le")) // 2


def check_discord_limits(body: dict[str, Any]) -> None:
    """Every documented limit of a webhook message with embeds."""
    assert units(body["content"]) <= 2_000
    assert body["allowed_mentions"] == {"parse": []}
    embeds = body["embeds"]
    assert len(embeds) <= 10
    total = 0
    for embed in embeds:
        assert units(embed["title"]) <= 256
        assert units(embed.get("description", "")) <= 4_096
        assert units(embed["footer"]["text"]) <= 2_048
        fields = embed.get("fields", [])
        assert len(fields) <= 25
        for field in fields:
            assert 0 < units(field["name"].strip()) <= 256
            assert 0 < units(field["value"].strip()) <= 1_024
        total += units(embed["title"]) + units(embed.get("description", ""))
        total += units(embed["footer"]["text"])
        total += sum(units(f["name"]) + units(f["value"]) for f in fields)
    assert total <= 6_000


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_message_is_within_discord_limits(name: str) -> None:
    check_discord_limits(build_sink("discord").render(ALL[name]))


def test_alert_layout() -> None:
    body = build_sink("discord").render(ALERT)
    assert body["content"] == "🔴 **CRITICAL** · Suspicious PowerShell download on srv\\-web\\-01"
    (embed,) = body["embeds"]
    assert embed["title"] == "Suspicious PowerShell download on srv\\-web\\-01"
    assert embed["url"] == ALERT.link
    assert embed["color"] == 0xD0021B
    assert embed["description"].endswith(f"\n\n[Open in Sekoia\\.io]({ALERT.link})")
    assert embed["fields"][0] == {"name": "Urgency", "value": "82 \\(Major\\)", "inline": True}
    assert embed["footer"] == {"text": "CRITICAL severity"}


def test_huge_message_is_cut_visibly_and_keeps_the_link() -> None:
    embed = build_sink("discord").render(HUGE)["embeds"][0]
    assert "\\[truncated\\]" in embed["description"]
    assert embed["description"].endswith(f"({ALERT.link})")
    assert embed["fields"][-1]["value"].endswith("more facts not shown")


def test_hostile_text_pings_nobody_and_links_nowhere() -> None:
    body = build_sink("discord").render(HOSTILE)
    embed = body["embeds"][0]
    assert "url" not in embed
    assert body["allowed_mentions"] == {"parse": []}  # belt and braces: no ping whatever
    for path, text in walk_strings(body):
        assert "https://" not in text, path
        # Discord shows "\@everyone" and "\<@1>" as text: only unescaped ones would ping.
        assert not re.search(r"(?<!\\)(@everyone|@here|<@|<#)", text), path


def test_headline_and_fields_use_discords_own_limits() -> None:
    title = "Suspicious PowerShell download on srv-web-01 " * 30  # 1,350 characters
    facts = (Fact(name="n" * 300, value="v" * 1_500),)
    body = build_sink("discord").render(ALERT.model_copy(update={"title": title, "facts": facts}))
    check_discord_limits(body)
    assert body["content"] == "🔴 **CRITICAL** · " + title.strip().replace("-", "\\-")
    embed = body["embeds"][0]
    assert units(embed["title"]) == 256
    (field,) = embed["fields"]
    assert units(field["name"]) == 256
    assert units(field["value"]) == 1_024
    assert field["value"].endswith("… \\[truncated\\]")


def test_rendered_description_keeps_lines_and_the_link() -> None:
    text = "Details:\nline two\n\nSecond paragraph"
    body = build_sink("discord").render(ALERT.model_copy(update={"text": text}))
    rendered = service_renderers().render("discord", body["embeds"][0]["description"])
    assert rendered.text == f"{text}\n\nOpen in Sekoia.io"
    assert rendered.links == [ALERT.link]


def test_options() -> None:
    sink = build_sink(
        "discord", username="notirouter", avatar_url="https://example.com/a.png", thread_id="42"
    )
    body = sink.render(ALERT)
    assert body["username"] == "notirouter"
    assert body["avatar_url"] == "https://example.com/a.png"
    with pytest.raises(ValueError, match="username"):
        build_sink("discord", username="x" * 81)


def test_rate_limit_follows_discords_bucket() -> None:
    sink = build_sink("discord")
    assert sink.rate_limit == 0.5
    assert sink.options.burst == 5
    assert build_sink("discord", rate_limit=5).rate_limit == 5.0


async def test_request_asks_discord_to_confirm(loopback: LoopbackServer, make_sink: Any) -> None:
    loopback.reply(Reply(204))
    url = f"{loopback.url}/api/webhooks/{WEBHOOK_ID}/{SECRET}?thread_id=7"
    result = await make_sink("discord", url=url).send(ALERT)
    assert result.outcome is Outcome.DELIVERED
    request = loopback.requests[0]
    assert request.path == f"/api/webhooks/{WEBHOOK_ID}/{SECRET}"
    assert sorted(request.query.split("&")) == ["thread_id=7", "wait=true"]
    check_discord_limits(request.json())


def error(status: int, code: int, message: str, **extra: Any) -> Reply:
    """An answer shaped like Discord's JSON errors."""
    return Reply(status, json.dumps({"code": code, "message": message, **extra}))


CREATED = json.dumps({"id": "1", "type": 0, "content": "…", "webhook_id": WEBHOOK_ID})


@pytest.mark.parametrize(
    ("reply", "outcome", "detail"),
    [
        (Reply(204), Outcome.DELIVERED, "204"),
        (Reply(200, CREATED, {"Content-Type": "application/json"}), Outcome.DELIVERED, "200"),
        (
            error(400, 50035, "Invalid Form Body", errors={"embeds": {}}),
            Outcome.PERMANENT,
            "code 50035: Invalid Form Body",
        ),
        (error(401, 50027, "Invalid Webhook Token"), Outcome.PERMANENT, "50027"),
        (error(404, 10015, "Unknown Webhook"), Outcome.PERMANENT, "code 10015: Unknown Webhook"),
        (error(413, 40005, "Request entity too large"), Outcome.PERMANENT, "40005"),
        (Reply(500, "internal"), Outcome.RETRY, "500"),
        (Reply(502, "<html>Bad Gateway</html>"), Outcome.RETRY, "502"),
    ],
)
async def test_discord_answers(
    loopback: LoopbackServer, make_sink: Any, reply: Reply, outcome: Outcome, detail: str
) -> None:
    loopback.reply(reply)
    sink = make_sink("discord", url=f"{loopback.url}/api/webhooks/1/{SECRET}")
    result = await attempt(sink, ALERT, sink_redactor(sink))  # the core redacts echoed secrets
    assert result.outcome is outcome
    assert detail in result.detail
    assert SECRET not in result.detail


RATE_LIMITED = {"message": "You are being rate limited.", "retry_after": 64.57, "global": False}


async def test_429_prefers_the_bodys_retry_after(loopback: LoopbackServer, make_sink: Any) -> None:
    loopback.reply(Reply(429, json.dumps(RATE_LIMITED), {"Retry-After": "65"}))
    result = await make_sink("discord", url=f"{loopback.url}/api/webhooks/1/{SECRET}").send(ALERT)
    assert result.outcome is Outcome.RETRY
    assert result.retry_after == 64.57
    assert "rate limited" in result.detail


async def test_global_429_is_reported(loopback: LoopbackServer, make_sink: Any) -> None:
    body = {**RATE_LIMITED, "retry_after": 0.5, "global": True}
    loopback.reply(Reply(429, json.dumps(body), {"Retry-After": "1", "X-RateLimit-Global": "true"}))
    result = await make_sink("discord", url=f"{loopback.url}/api/webhooks/1/{SECRET}").send(ALERT)
    assert result.retry_after == 0.5
    assert "global" in result.detail


async def test_429_without_json_uses_the_header(loopback: LoopbackServer, make_sink: Any) -> None:
    loopback.reply(Reply(429, "<html>Cloudflare: slow down</html>", {"Retry-After": "9"}))
    result = await make_sink("discord", url=f"{loopback.url}/api/webhooks/1/{SECRET}").send(ALERT)
    assert result.outcome is Outcome.RETRY
    assert result.retry_after == 9.0
