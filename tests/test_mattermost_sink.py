"""The mattermost sink: post layout, priority, the 16,383-character limit, Mattermost's answers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from notirouter.api.escape import ZERO_WIDTH_SPACE
from notirouter.api.message import Fact, Severity
from notirouter.api.sink import Outcome
from notirouter.delivery.dispatcher import attempt, sink_redactor
from tests.chat_helpers import SECRET, build_sink
from tests.chat_messages import ALERT, ALL, HOSTILE, HUGE
from tests.loopback import LoopbackServer, Reply
from tests.service_renderers import service_renderers

POST_MAX_RUNES = 16_383


def app_error(status: int, error_id: str, message: str, detailed: str = "") -> Reply:
    """An answer shaped like Mattermost's AppError JSON."""
    body = {
        "id": error_id,
        "message": message,
        "detailed_error": detailed,
        "request_id": "h5x1c8ykn3r9bdzq4w6ejm7pto",
        "status_code": status,
    }
    return Reply(status, json.dumps(body), {"Content-Type": "application/json"})


def test_alert_layout() -> None:
    body = build_sink("mattermost").render(ALERT)
    headline, text = body["text"].split("\n", 1)
    assert headline == "🔴 **CRITICAL** · Suspicious PowerShell download on srv\\-web\\-01"
    assert text.startswith("PowerShell on srv\\-web\\-01 downloaded")
    (attachment,) = body["attachments"]
    assert attachment["color"] == "#D0021B"
    assert attachment["fallback"] == "CRITICAL: " + ALERT.title
    assert attachment["title_link"] == ALERT.link
    assert attachment["text"] == f"[Open in Sekoia\\.io]({ALERT.link})"
    assert attachment["fields"][0] == {"title": "Urgency", "value": "82 \\(Major\\)", "short": True}
    assert len(attachment["fields"]) == len(ALERT.facts)
    assert body["priority"] == {"priority": "urgent"}
    assert "channel" not in body
    assert "username" not in body


def test_options_go_into_the_body() -> None:
    sink = build_sink(
        "mattermost",
        channel="soc-alerts",
        username="notirouter",
        icon_url="https://example.com/icon.png",
        icon_emoji="rotating_light",
    )
    body = sink.render(ALERT)
    assert body["channel"] == "soc-alerts"
    assert body["username"] == "notirouter"
    assert body["icon_url"] == "https://example.com/icon.png"
    assert body["icon_emoji"] == "rotating_light"


@pytest.mark.parametrize("bad", [{"channel": "two words"}, {"icon_url": "ftp://x/y.png"}])
def test_invalid_options_are_config_errors(bad: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        build_sink("mattermost", **bad)


@pytest.mark.parametrize(
    ("severity", "priority"),
    [
        (Severity.CRITICAL, "urgent"),
        (Severity.HIGH, "important"),
        (Severity.MEDIUM, None),
        (Severity.LOW, None),
        (Severity.INFO, None),
    ],
)
def test_priority_follows_severity(severity: Severity, priority: str | None) -> None:
    body = build_sink("mattermost").render(ALERT.model_copy(update={"severity": severity}))
    assert body.get("priority") == ({"priority": priority} if priority else None)


def test_priority_can_be_switched_off() -> None:
    sink = build_sink("mattermost", urgent_from=None, important_from=None)
    assert "priority" not in sink.render(ALERT)
    sink = build_sink("mattermost", urgent_from="high", important_from=None)
    assert sink.render(ALERT.model_copy(update={"severity": Severity.HIGH}))["priority"] == {
        "priority": "urgent"
    }


@pytest.mark.parametrize("name", sorted(ALL))
def test_text_never_exceeds_one_post(name: str) -> None:
    body = build_sink("mattermost").render(ALL[name])
    assert len(body["text"]) <= POST_MAX_RUNES  # Python counts code points, as Mattermost runes
    assert body["text"]
    assert len(body["attachments"]) == 1


def test_long_text_is_cut_cleanly() -> None:
    body = build_sink("mattermost").render(HUGE)
    assert POST_MAX_RUNES - 40 < len(body["text"]) <= POST_MAX_RUNES
    assert body["text"].endswith("… \\[truncated\\]")
    assert "\n" in body["text"]  # its lines are kept
    # The link to the whole alert is still there, in the attachment.
    assert body["attachments"][0]["title_link"] == HUGE.link
    assert body["attachments"][0]["fields"][-1]["value"].endswith("more facts not shown")


def test_hostile_values_are_escaped() -> None:
    body = build_sink("mattermost").render(HOSTILE)
    attachment = body["attachments"][0]
    assert "title_link" not in attachment  # javascript: is not a link
    assert "text" not in attachment
    # The fork of marked has no escape for ":" or "<": character references instead.
    assert "\\[Reset your password\\]\\(https&#58;//evil\\.example/login\\)" in body["text"]
    assert "&#60;\\!here&#62;" in body["text"]  # Slack-style <!here> cannot match
    assert "<" not in body["text"]


def test_fallback_is_plain_and_inert() -> None:
    fallback = build_sink("mattermost").render(HOSTILE)["attachments"][0]["fallback"]
    assert fallback.startswith(
        "HIGH: @\u200bchannel <\u200b!here> [Reset your password](https\u200b:"
    )
    assert "\\" not in fallback  # plain text: no escapes


def web_app_shows(text: str) -> tuple[str, list[str]]:
    """The visible text and the links of Mattermost's web app for one Markdown value."""
    rendered = service_renderers().render("mattermost", text)
    return rendered.text.strip().replace(ZERO_WIDTH_SPACE, ""), rendered.links


def test_no_visible_backslash_and_no_link_from_the_issue_examples() -> None:
    message = ALERT.model_copy(
        update={
            "title": "New alert: 15:06:57Z",
            "text": "C:\\Windows\\System32 <1540296962:/login> <@U024BE7LH> analyst@example.com",
            "facts": (Fact(name="Host: srv-01", value="\\\\srv-01\\share <@U024BE7LH>"),),
        }
    )
    body = build_sink("mattermost").render(message)
    shown, links = web_app_shows(body["text"])
    assert shown == (
        "🔴 CRITICAL · New alert: 15:06:57Z\n"
        "C:\\Windows\\System32 <1540296962:/login> <@U024BE7LH> analyst@example.com"
    )
    assert links == []  # no numeric-IP link, no mailto
    field = body["attachments"][0]["fields"][0]
    assert field["title"] == "Host: srv-01"  # shown without Markdown: nothing escaped
    assert web_app_shows(field["value"]) == ("\\\\srv-01\\share <@U024BE7LH>", [])


def test_a_linked_title_is_plain_text_without_escapes() -> None:
    # Web and mobile show an attachment title that has a title_link as plain text.
    title = "Suspicious PowerShell download on srv-web-01 (10.0.4.12): C:\\Temp\\a_b.ps1"
    body = build_sink("mattermost").render(ALERT.model_copy(update={"title": title}))
    attachment = body["attachments"][0]
    assert attachment["title_link"] == ALERT.link
    assert attachment["title"] == title
    assert attachment["fallback"] == f"CRITICAL: {title}"


def test_text_keeps_its_line_breaks_and_paragraphs() -> None:
    text = "Details:\nline two\n\nSecond paragraph"
    body = build_sink("mattermost").render(ALERT.model_copy(update={"text": text}))
    rendered = service_renderers().render("mattermost", body["text"])
    assert [p.text for p in rendered.tags("p")] == [
        "🔴 CRITICAL · Suspicious PowerShell download on srv-web-01\nDetails:\nline two",
        "Second paragraph",
    ]


def test_rate_limit_default_and_override() -> None:
    assert build_sink("mattermost").rate_limit == 10.0
    assert build_sink("mattermost", rate_limit=2).rate_limit == 2.0


@pytest.mark.parametrize(
    ("reply", "outcome", "detail"),
    [
        (Reply(200, "ok", {"Content-Type": "text/plain"}), Outcome.DELIVERED, "ok"),
        (Reply(200, "<html>SSO</html>"), Outcome.PERMANENT, "unexpected answer"),
        (
            app_error(400, "web.incoming_webhook.invalid.app_error", "Invalid webhook."),
            Outcome.PERMANENT,
            "web.incoming_webhook.invalid.app_error: Invalid webhook.",
        ),
        (
            app_error(400, "web.incoming_webhook.text.app_error", "No text specified."),
            Outcome.PERMANENT,
            "No text specified.",
        ),
        (
            app_error(
                403, "web.incoming_webhook.channel_locked.app_error", "This webhook is locked."
            ),
            Outcome.PERMANENT,
            "channel_locked",
        ),
        (
            app_error(404, "web.incoming_webhook.channel.app_error", "Couldn't find the channel."),
            Outcome.PERMANENT,
            "Couldn't find the channel.",
        ),
        (
            app_error(501, "web.incoming_webhook.disabled.app_error", "Incoming webhooks are off."),
            Outcome.PERMANENT,
            "disabled",
        ),
        (
            app_error(500, "api.post.create_webhook_post.creating.app_error", "Error creating."),
            Outcome.RETRY,
            "creating",
        ),
        (Reply(429, "limit exceeded", {"Retry-After": "2"}), Outcome.RETRY, "limit exceeded"),
    ],
)
async def test_mattermost_answers(
    loopback: LoopbackServer, make_sink: Any, reply: Reply, outcome: Outcome, detail: str
) -> None:
    loopback.reply(reply)
    sink = make_sink("mattermost", url=f"{loopback.url}/hooks/{SECRET}")
    result = await sink.send(ALERT)
    assert result.outcome is outcome
    assert detail in result.detail
    if reply.status == 429:
        assert result.retry_after == 2.0
    request = loopback.requests[0]
    assert request.path == f"/hooks/{SECRET}"
    assert request.json()["text"].startswith("🔴 **CRITICAL**")


async def test_error_quoting_the_hook_id_does_not_leak_it(
    loopback: LoopbackServer, make_sink: Any
) -> None:
    loopback.reply(
        app_error(400, "web.incoming_webhook.invalid.app_error", f"Invalid webhook {SECRET}.")
    )
    sink = make_sink("mattermost", url=f"{loopback.url}/hooks/{SECRET}")
    result = await attempt(sink, ALERT, sink_redactor(sink))  # the core redacts echoed secrets
    assert result.outcome is Outcome.PERMANENT
    assert SECRET not in result.detail


async def test_refused_priority_is_dropped_on_the_next_attempt(
    loopback: LoopbackServer, make_sink: Any
) -> None:
    loopback.reply(
        app_error(
            403,
            "api.post.post_priority.priority_post_not_allowed_for_user.request_error",
            "Setting priority is not allowed.",
        ),
        Reply(200, "ok"),
    )
    sink = make_sink("mattermost", url=f"{loopback.url}/hooks/{SECRET}")
    first = await sink.send(ALERT)
    assert first.outcome is Outcome.RETRY
    assert "without message priority" in first.detail
    second = await sink.send(ALERT)
    assert second.outcome is Outcome.DELIVERED
    assert loopback.requests[0].json()["priority"] == {"priority": "urgent"}
    assert "priority" not in loopback.requests[1].json()
