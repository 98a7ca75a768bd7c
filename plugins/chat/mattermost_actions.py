"""Chat actions on Mattermost (token mode): attachment buttons carrying a token notirouter signs.

Mattermost POSTs a click to the button's ``integration.url`` (``<public_url>/interactions/
mattermost``) with the button's ``context``, the clicking user and the post's id, and signs
nothing. So each button's context carries ``token`` = HMAC-SHA256, with the sink's
``actions.secret``, of the sink, the alert, the action, the post's id and an expiry: a click is
believed only when the token matches those values and the post Mattermost names is that post.
A token copied from another message, another alert or another action is refused.

The post's id is known only once it exists: the first message is posted, then patched with its
buttons. Mattermost attachment buttons have no confirmation dialog: a first click on Reject
only arms it, and the same user's second click within two minutes rejects. There is no text
input in an attachment, so there is no Comment button (an interactive dialog would need a
Mattermost API call before the endpoint answers, which the endpoint never makes).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Annotated, Any

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
    escape_mattermost,
)

from . import mattermost_api
from .api_base import ApiBase

TOKEN_LIFETIME_SECONDS = 30 * 86_400.0  # as long as a conversation's reference is kept
PATH = "/interactions/mattermost"
_ID = re.compile(r"[a-z0-9]{26}")
_USERNAME = re.compile(r"[a-z0-9._-]{1,64}")
BUTTONS = (
    (ChatAction.ACKNOWLEDGE, "Acknowledge", "primary"),
    (ChatAction.REJECT, "Reject (false positive)", "danger"),
)


class MattermostActions(ActionsOptions):
    """``actions:`` of a Mattermost sink: where Mattermost reaches notirouter, the token key."""

    public_url: ApiBase
    """notirouter's address as the Mattermost server reaches it (https, or http on loopback)."""
    secret: Annotated[SecretStr, Field(min_length=16, max_length=500)]
    """The key that signs each button's token (e.g. ``${NOTIROUTER_MATTERMOST_SECRET}``)."""


def token(secret: str, sink: str, alert: str, action: str, post: str, expires: int) -> str:
    """The HMAC-SHA256 binding one button to one sink, alert, action and post, until a time."""
    bound = "\n".join(("notirouter-mattermost-v1", sink, alert, action, post, str(expires)))
    return hmac.new(secret.encode(), bound.encode(), hashlib.sha256).hexdigest()


def buttons(
    sink: str, options: MattermostActions, alert: str, post: str, now: float
) -> list[dict[str, Any]]:
    """The attachment's actions for ``alert`` on the post ``post``."""
    expires = int(now + TOKEN_LIFETIME_SECONDS)
    secret = options.secret.get_secret_value()
    found = []
    for action, name, style in BUTTONS:
        context = {
            "sink": sink,
            "alert": alert,
            "action": action.value,
            "post": post,
            # A string: Mattermost passes the context through JSON maps, where a number may
            # come back reformatted.
            "expires": str(expires),
            "token": token(secret, sink, alert, action.value, post, expires),
        }
        found.append(
            {
                "id": "notirouter" + action.value,  # letters only: Mattermost's rule for ids
                "name": name,
                "type": "button",
                "style": style,
                "integration": {"url": options.public_url + PATH, "context": context},
            }
        )
    return found


def verify(sink: str, options: MattermostActions, body: bytes, now: float) -> Click | None:
    """The click, if its token is this sink's for the post it came from, and unexpired."""
    try:
        request = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(request, dict) or not isinstance(request.get("context"), dict):
        return None
    context = request["context"]
    fields = [context.get(k) for k in ("sink", "alert", "action", "post", "token")]
    carried_expiry = context.get("expires")
    if not all(isinstance(v, str) for v in fields) or not isinstance(carried_expiry, str):
        return None
    if not carried_expiry.isdigit() or len(carried_expiry) > 12:
        return None
    expires = int(carried_expiry)
    carried_sink, alert, action, post, given = (str(v) for v in fields)
    if carried_sink != sink or action not in {a.value for a, _, _ in BUTTONS}:
        return None
    expected = token(options.secret.get_secret_value(), sink, alert, action, post, expires)
    if not hmac.compare_digest(expected.encode(), given.encode()):
        return None
    user_id = request.get("user_id")
    if expires < now or request.get("post_id") != post or not isinstance(user_id, str):
        return None
    if not _ID.fullmatch(user_id):
        return None
    name = request.get("user_name")
    return Click(
        sink=sink,
        action=ChatAction(action),
        alert=alert,
        user_id=user_id,
        user_name=name if isinstance(name, str) and _USERNAME.fullmatch(name) else "",
        message=post,
        received_at=now,
    )


def answer(click: Click, *, armed: bool) -> dict[str, Any]:
    """The ephemeral text Mattermost shows the user at once."""
    if armed:
        return {
            "ephemeral_text": "Click **Reject (false positive)** again within 2 minutes to"
            " confirm: the alert will be rejected in Sekoia.io as a false positive."
        }
    return {
        "ephemeral_text": f"Asked Sekoia.io to {click.action.verb} the alert: the outcome"
        " follows in the thread."
    }


async def tell(
    http: HttpClient,
    base: str,
    token_value: str,
    channel_id: str,
    report: ActionReport,
    timeout: float,
) -> SendResult:
    """Done: a reply under the post, and the note in its attachment's footer. Not done: an
    ephemeral post to the user who clicked."""
    click = report.click
    text = escape_mattermost(report.text)
    if click.user_name:  # a Mattermost username (checked): the one mention in the line
        text = text.replace(escape_mattermost(click.who), click.who, 1)
    reply = {"channel_id": channel_id, "root_id": click.message, "message": text}
    if not report.done:
        body = {"user_id": click.user_id, "post": reply}
        request = mattermost_api.request(base, token_value, "posts/ephemeral", body)
        response = await http.send(request, timeout=timeout)
        if response.status not in (401, 403):
            return mattermost_api.answer(response)
        # Ephemeral posts need the create_post_ephemeral permission (by default system
        # admins only): without it the answer goes in the thread, where everyone sees it.
    request = mattermost_api.request(base, token_value, "posts", reply)
    result = mattermost_api.answer(await http.send(request, timeout=timeout))
    if result.outcome is not Outcome.DELIVERED or not report.done:
        return result
    get = HttpRequest(
        url=f"{base}/api/v4/posts/{click.message}",
        method="GET",
        headers={"Authorization": f"Bearer {token_value}"},
    )
    response = await http.send(get, timeout=timeout)
    post = response.json()
    if response.status != 200 or not isinstance(post, dict):
        return mattermost_api.answer(response)
    props = post.get("props") if isinstance(post.get("props"), dict) else {}
    assert isinstance(props, dict)
    attachments = props.get("attachments")
    if isinstance(attachments, list) and attachments and isinstance(attachments[0], dict):
        attachments[0]["footer"] = report.text[:300]  # plain text: no Markdown there
    patch = {"props": props}
    request = mattermost_api.request(
        base, token_value, f"posts/{click.message}/patch", patch, "PUT"
    )
    return mattermost_api.answer(await http.send(request, timeout=timeout))
