"""Chat actions on Slack (bot-token mode): Block Kit buttons, the signed callback, the answers.

Slack posts a click to the app's interactivity Request URL (``POST /interactions/slack``) as a
form field ``payload`` (JSON, ``type: block_actions``), signed: ``X-Slack-Signature: v0=`` +
HMAC-SHA256 of ``v0:{X-Slack-Request-Timestamp}:{raw body}`` with the app's signing secret.
A request more than five minutes from now is refused, and the signature is remembered for that
window so the same request is never taken twice.

Buttons: Acknowledge, and Reject with Slack's own confirmation dialog. Comment is an input
block in the message (Enter sends it): a modal would need ``views.open`` with the click's
``trigger_id`` within three seconds, i.e. a Web API call before the endpoint answers, which
the endpoint never makes (it only verifies and queues). Each element names the sink and the
alert (``notirouter|<sink>|<alert>``); Slack signs the whole payload, and nobody but the bot
can change the bot's messages, so these are as trusted as the signature.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from pydantic import Field, SecretStr

from notirouter import (
    ActionReport,
    ActionsOptions,
    ChatAction,
    Click,
    HttpClient,
    HttpRequest,
    Outcome,
    SendResult,
    escape_plain,
    escape_slack,
)

from . import slack_api
from .api_base import LOOPBACK_HOSTS

MAX_AGE_SECONDS = 300.0
PREFIX = "notirouter"
NOTE_BLOCK = "notirouter.note"
COMMENT_MAX = 2_000
_USER_ID = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


class SlackActions(ActionsOptions):
    """``actions:`` of a Slack sink: the app's signing secret, the enricher, who may act."""

    signing_secret: SecretStr = Field(min_length=8, max_length=200)


def element_id(sink: str, alert: str) -> str:
    """What a button's ``value`` and the comment's ``block_id`` carry."""
    return f"{PREFIX}|{sink}|{alert}"


def action_blocks(sink: str, alert: str) -> list[dict[str, Any]]:
    """The buttons and the comment input for ``alert``'s root message."""
    value = element_id(sink, alert)
    confirm = {
        "title": _plain("Reject this alert?"),
        "text": _plain("It will be rejected in Sekoia.io as a false positive."),
        "confirm": _plain("Reject"),
        "deny": _plain("Cancel"),
        "style": "danger",
    }
    buttons = [
        {
            "type": "button",
            "action_id": f"{PREFIX}.{ChatAction.ACKNOWLEDGE.value}",
            "text": _plain("Acknowledge"),
            "style": "primary",
            "value": value,
        },
        {
            "type": "button",
            "action_id": f"{PREFIX}.{ChatAction.REJECT.value}",
            "text": _plain("Reject (false positive)"),
            "style": "danger",
            "value": value,
            "confirm": confirm,
        },
    ]
    comment = {
        "type": "input",
        "block_id": f"{value}|c",
        "dispatch_action": True,
        "optional": True,
        "label": _plain("Comment in Sekoia.io (Enter to send)"),
        "element": {
            "type": "plain_text_input",
            "action_id": f"{PREFIX}.{ChatAction.COMMENT.value}",
            "max_length": COMMENT_MAX,
            "dispatch_action_config": {"trigger_actions_on": ["on_enter_pressed"]},
        },
    }
    return [{"type": "actions", "block_id": f"{value}|a", "elements": buttons}, comment]


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``v0=`` and the hex HMAC-SHA256 of ``v0:{timestamp}:{body}``."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def verify(
    sink: str, options: SlackActions, headers: Mapping[str, str], body: bytes, now: float
) -> Click | None:
    """The click in a request signed with this sink's secret, recent, about this sink."""
    timestamp = headers.get("x-slack-request-timestamp", "")
    given = headers.get("x-slack-signature", "")
    if not timestamp.isdigit() or not given.startswith("v0="):
        return None
    if abs(now - int(timestamp)) > MAX_AGE_SECONDS:
        return None
    expected = signature(options.signing_secret.get_secret_value(), timestamp, body)
    if not hmac.compare_digest(expected.encode(), given.encode()):
        return None
    return _click(sink, body, now)


def _click(sink: str, body: bytes, now: float) -> Click | None:
    try:
        fields = parse_qs(body.decode("utf-8"), max_num_fields=5)
        payload = json.loads(fields["payload"][0])
    except (UnicodeDecodeError, ValueError, KeyError, IndexError):
        return None
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        return None
    actions = payload.get("actions")
    user, container = payload.get("user"), payload.get("container")
    if not (isinstance(actions, list) and actions and isinstance(actions[0], dict)):
        return None
    if not (isinstance(user, dict) and isinstance(container, dict)):
        return None
    action = actions[0]
    kind = str(action.get("action_id", "")).removeprefix(PREFIX + ".")
    if kind not in {a.value for a in ChatAction}:
        return None
    carried = str(action.get("value" if kind != ChatAction.COMMENT else "block_id", ""))
    parts = carried.split("|")
    if len(parts) < 3 or parts[0] != PREFIX or parts[1] != sink:
        return None  # another sink's message: that sink's secret must have signed it
    channel, ts = container.get("channel_id"), container.get("message_ts")
    user_id = user.get("id")
    if not all(isinstance(v, str) and v for v in (channel, ts, user_id)):
        return None
    text = str(action.get("value") or "").strip() if kind == ChatAction.COMMENT else ""
    if kind == ChatAction.COMMENT and not text:
        return None
    message = payload.get("message") if isinstance(payload.get("message"), dict) else {}
    assert isinstance(message, dict)
    return Click(
        sink=sink,
        action=ChatAction(kind),
        alert=parts[2],
        user_id=str(user_id),
        user_name=str(user.get("username") or user.get("name") or "")[:80],
        text=text[:COMMENT_MAX],
        message=slack_api.reference(str(channel), str(ts)),
        received_at=now,
        context={
            "response_url": str(payload.get("response_url") or ""),
            "blocks": message.get("blocks") if isinstance(message.get("blocks"), list) else [],
            "text": str(message.get("text") or ""),
        },
    )


def mention(click: Click) -> str:
    """``<@U123>`` for an id Slack gave (letters and digits only), else the plain name."""
    if click.user_id and set(click.user_id) <= _USER_ID:
        return f"<@{click.user_id}>"
    return escape_plain(click.who)


def noted_blocks(blocks: list[Any], note: str) -> list[Any]:
    """The message's blocks with our note (replacing an earlier one) above the buttons."""
    kept = [b for b in blocks if not (isinstance(b, dict) and b.get("block_id") == NOTE_BLOCK)]
    block = {
        "type": "context",
        "block_id": NOTE_BLOCK,
        "elements": [{"type": "mrkdwn", "text": note, "verbatim": True}],
    }
    at = next(
        (
            i
            for i, b in enumerate(kept)
            if isinstance(b, dict) and str(b.get("block_id", "")).startswith(PREFIX + "|")
        ),
        len(kept),
    )
    return [*kept[:at], block, *kept[at:]]


async def tell(
    http: HttpClient, api_url: str, token: str, report: ActionReport, timeout: float
) -> SendResult:
    """Reply in the alert's thread; when done, edit the root message; when not, tell the user
    who clicked (``response_url``, an ephemeral message)."""
    click = report.click
    channel, ts = slack_api.parse_reference(click.message)
    # Sekoia.io's reason is untrusted text: inert, and the user the only mention.
    line = escape_slack(report.text).replace(escape_slack(click.who), mention(click), 1)
    if not report.done:
        return await _ephemeral(http, click, line, timeout)
    reply = {"channel": channel, "thread_ts": ts, "text": line, "unfurl_links": False}
    result, _ = slack_api.answer(
        await http.send(
            slack_api.request(api_url, "chat.postMessage", token, reply), timeout=timeout
        )
    )
    if result.outcome is not Outcome.DELIVERED:
        return result
    blocks = click.context.get("blocks")
    if not isinstance(blocks, list) or not blocks:
        return result
    edit = {
        "channel": channel,
        "ts": ts,
        "text": str(click.context.get("text") or line),
        "blocks": noted_blocks(blocks, line),
    }
    result, _ = slack_api.answer(
        await http.send(slack_api.request(api_url, "chat.update", token, edit), timeout=timeout)
    )
    return result


async def _ephemeral(http: HttpClient, click: Click, line: str, timeout: float) -> SendResult:
    url = str(click.context.get("response_url") or "")
    if not _response_url_ok(url):
        return SendResult.permanent("no usable response_url to answer the user")
    body = {"response_type": "ephemeral", "replace_original": False, "text": line}
    response = await http.send(HttpRequest(url=url, json=body), timeout=timeout)
    if 200 <= response.status < 300:
        return SendResult.delivered("told the user")
    if response.status == 429 or response.status >= 500:
        return SendResult.retry(f"response_url answered HTTP {response.status}")
    return SendResult.permanent(f"response_url answered HTTP {response.status}")


def _response_url_ok(url: str) -> bool:
    # From a signed payload; still, only https (or a loopback fake) ever gets a request.
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    return parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS


async def in_user_group(
    http: HttpClient, api_url: str, token: str, group: str, user: str, timeout: float
) -> bool:
    """Whether ``user`` is in the Slack user group ``group`` (``usergroups.users.list``)."""
    request = HttpRequest(
        url=f"{api_url}/usergroups.users.list",
        data=urlencode({"usergroup": group}).encode(),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    result, body = slack_api.answer(await http.send(request, timeout=timeout))
    users = body.get("users") if result.outcome is Outcome.DELIVERED else None
    return isinstance(users, list) and user in users


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": False}
