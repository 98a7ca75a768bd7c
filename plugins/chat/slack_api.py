"""Slack's Web API for the ``slack`` sink in bot-token mode: post, update, reply in a thread.

``chat.postMessage`` answers ``{"ok": true, "channel", "ts"}``: the channel id and ``ts`` are
the message's reference (``"<channel> <ts>"``). ``chat.update`` edits a message the bot posted;
``thread_ts`` makes a post a reply. Errors come as ``{"ok": false, "error": "<code>"}`` with
HTTP 200; 429 with ``Retry-After`` when rate limited.
"""

from __future__ import annotations

from typing import Any

from notirouter import HttpRequest, HttpResponse, SendResult, classify_status

# The edit cannot happen (deleted, too old, not ours): post a new message instead.
EDIT_REFUSED = frozenset({"cant_update_message", "edit_window_closed", "message_not_found"})
# The token or channel does not fit: every message would fail alike until the config changes.
CONFIG_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "missing_scope",
        "no_permission",
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "restricted_action",
        "team_access_not_granted",
    }
)
TRANSIENT = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


def reference(channel: str, ts: str) -> str:
    """A message's reference as stored: its channel id and ``ts``."""
    return f"{channel} {ts}"


def parse_reference(value: str) -> tuple[str, str]:
    """The channel id and ``ts`` of a stored reference."""
    channel, _, ts = value.partition(" ")
    return channel, ts


def request(base: str, method: str, token: str, body: dict[str, Any]) -> HttpRequest:
    """A Web API call with the bot token in the ``Authorization`` header."""
    return HttpRequest(
        url=f"{base}/{method}",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )


def answer(response: HttpResponse) -> tuple[SendResult, dict[str, Any]]:
    """Classify a Web API answer; the parsed body (empty if none) comes with it.

    A refused edit is reported as ``permanent`` with ``detail`` set to the error code: the
    caller recognises it with :func:`edit_refused` and posts anew.
    """
    if response.status != 200:
        return classify_status(response), {}
    body = response.json()
    if not isinstance(body, dict):
        return SendResult.permanent("HTTP 200 without a Slack Web API answer"), {}
    if body.get("ok") is True:
        return SendResult.delivered("ok"), body
    error = str(body.get("error") or "unknown_error")[:100]
    if error in TRANSIENT:
        return SendResult.retry(f"Slack error {error}", after=response.retry_after()), body
    if error in CONFIG_ERRORS:
        return SendResult.misconfigured(f"Slack refused the token or channel: {error}"), body
    return SendResult.permanent(f"Slack error {error}"), body


def edit_refused(result: SendResult) -> bool:
    """Whether ``result`` is Slack refusing an edit (the message is gone, or too old)."""
    return result.detail.removeprefix("Slack error ") in EDIT_REFUSED
