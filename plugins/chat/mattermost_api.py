"""Mattermost's REST API for the ``mattermost`` sink with a bot or personal access token.

``POST /api/v4/posts`` (``channel_id``, ``message``, ``root_id`` for a reply, ``props`` with the
attachments, ``metadata.priority``) answers 201 with the post, whose ``id`` is the reference;
``PUT /api/v4/posts/{id}/patch`` edits it. Errors are a JSON AppError
(``{"id", "message", "status_code"}``).
"""

from __future__ import annotations

from typing import Any

from notirouter import HttpRequest, HttpResponse, Outcome, SendResult, classify_status

from .common import excerpt

# 401: the token is wrong or revoked; 403: the account may not post in the channel.
CONFIG_STATUSES = frozenset({401, 403})


def post_body(webhook_body: dict[str, Any], channel_id: str, root_id: str | None) -> dict[str, Any]:
    """The API's post for what the sink would send to a webhook."""
    body: dict[str, Any] = {
        "channel_id": channel_id,
        "message": webhook_body["text"],
        "props": {"attachments": webhook_body["attachments"]},
    }
    if root_id:
        body["root_id"] = root_id
    elif "priority" in webhook_body:
        # Message priority is for root posts only.
        body["metadata"] = {"priority": webhook_body["priority"]}
    return body


def request(
    base: str, token: str, path: str, body: dict[str, Any], method: str = "POST"
) -> HttpRequest:
    """An API call with the token as a bearer token."""
    return HttpRequest(
        url=f"{base}/api/v4/{path}",
        method=method,
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )


def answer(response: HttpResponse) -> SendResult:
    """Delivered with the post's id as reference, or the failure classified."""
    found = response.json()
    if 200 <= response.status < 300:
        post_id = found.get("id") if isinstance(found, dict) else None
        if isinstance(post_id, str) and post_id:
            return SendResult.delivered(f"HTTP {response.status}", reference=post_id)
        return SendResult.permanent(f"HTTP {response.status} without a post id")
    result = classify_status(response)
    if not isinstance(found, dict) or "id" not in found:
        return result
    detail = f"HTTP {response.status} {found['id']}: {excerpt(str(found.get('message', '')))}"
    if response.status in CONFIG_STATUSES:
        return SendResult.misconfigured(f"Mattermost refused the token or channel: {detail}")
    if result.outcome is Outcome.RETRY:
        return SendResult.retry(detail, after=result.retry_after)
    return SendResult.permanent(detail)


def edit_refused(response_detail: str) -> bool:
    """Whether an edit failed because the post is gone (deleted: 404)."""
    return response_detail.startswith("HTTP 404")
