"""Writing chat actions back to Sekoia.io: change an alert's status, comment on it.

Statuses are customisable per community, so the action is looked up by name in
``GET /v1/sic/alerts/{uuid}/workflow`` (``{"actions": [{"id", "name", ...}]}``) and applied by
``PATCH /v1/sic/alerts/{uuid}/workflow`` with ``{"action_uuid", "comment"}``; a uuid is never
hard-coded. Comments are ``POST /v1/sic/alerts/{uuid}/comments`` with ``{"content", "author"}``,
the author at most 32 characters.

Writes are tried once here: the click is a durable job, and the core retries it on a transient
answer (429, 5xx, no answer) with its own backoff. The keys needs ``SIC_READ_ALERTS``,
``SIC_WRITE_ALERTS_WORKFLOW`` and ``SIC_WRITE_ALERTS_COMMENT``.
"""

from __future__ import annotations

from typing import Any

from notirouter import ChatAction, HttpResponse, SendResult, TransportError

from .client import RETRIED_STATUSES, SekoiaApi, SekoiaApiError
from .places import path_segment, valid_uuid

AUTHOR_MAX = 32
CONTENT_MAX = 10_000
WRITE_PERMISSIONS = ("SIC_WRITE_ALERTS_WORKFLOW", "SIC_WRITE_ALERTS_COMMENT")
# Which workflow action each chat action applies (the names Sekoia.io's default workflow uses).
ACTION_NAMES: dict[ChatAction, tuple[str, ...]] = {
    ChatAction.ACKNOWLEDGE: ("acknowledge",),
    ChatAction.REJECT: ("reject",),
}
REFUSALS = {
    401: "the Sekoia.io API key was rejected (HTTP 401)",
    403: "the Sekoia.io API key may not do this (HTTP 403: a write permission is missing)",
    404: "the alert is not found in Sekoia.io (HTTP 404)",
    409: "Sekoia.io refused the change (HTTP 409: the alert is not in a state that allows it)",
}


def author(name: str) -> str:
    """The comment author: the chat user's name, within Sekoia.io's 32 characters."""
    return " ".join(name.split())[:AUTHOR_MAX] or "notirouter"


class WriteBack:
    """The write calls of one enricher's API client."""

    def __init__(self, api: SekoiaApi) -> None:
        self.api = api

    async def change_status(self, alert: str, action: ChatAction, comment: str) -> SendResult:
        """Find the workflow action by name, then apply it with ``comment``."""
        uuid = valid_uuid(alert)
        names = ACTION_NAMES.get(action)
        if uuid is None or names is None:
            return SendResult.permanent(f"cannot {action.verb} this alert from chat")
        path = f"/v1/sic/alerts/{path_segment(uuid)}/workflow"
        try:
            workflow = await self.api.get_object(path, {}, "workflow")
        except SekoiaApiError as exc:
            if exc.status in RETRIED_STATUSES or (exc.status is None and not exc.auth):
                return SendResult.retry(str(exc))
            return SendResult.permanent(REFUSALS.get(exc.status or 0, str(exc)))
        offered = _actions(workflow)
        found = next((a for a in offered if a[1].strip().lower() in names), None)
        if found is None:
            shown = ", ".join(name for _, name in offered) or "none"
            return SendResult.permanent(
                f"the alert's workflow offers no {names[0].title()} action now"
                f" (offered: {shown[:200]})"
            )
        body = {"action_uuid": found[0], "comment": comment[:CONTENT_MAX]}
        return await self._write("PATCH", path, body)

    async def add_comment(self, alert: str, content: str, name: str) -> SendResult:
        """Comment on the alert as the chat user."""
        uuid = valid_uuid(alert)
        if uuid is None:
            return SendResult.permanent("cannot comment on this alert from chat")
        path = f"/v1/sic/alerts/{path_segment(uuid)}/comments"
        body = {"content": content[:CONTENT_MAX], "author": author(name)}
        return await self._write("POST", path, body)

    async def write_access(self) -> str | None:
        """What ``GET /v1/me`` tells of the key's write permissions (``None``: it may write).

        Whether ``/v1/me`` lists permissions is not documented: when it does not, the answer
        says that only the first action can tell.
        """
        try:
            me = await self.api.get_object("/v1/me", {}, "account")
        except SekoiaApiError as exc:
            return f"cannot check the API key: {exc}"
        granted = _permission_names(me)
        if granted is None:
            return (
                "the API key works; /v1/me does not list its permissions, so whether it may"
                " write is known at the first action (HTTP 403 if not): it needs "
                + " and ".join(WRITE_PERMISSIONS)
            )
        missing = [p for p in WRITE_PERMISSIONS if p not in granted]
        if missing:
            return "the API key lacks " + ", ".join(missing) + ": chat actions will be refused"
        return None

    async def _write(self, method: str, path: str, body: dict[str, Any]) -> SendResult:
        try:
            response = await self.api.send_once(method, path, body)
        except TransportError as exc:
            return SendResult.retry(f"Sekoia.io did not answer: {exc}")
        except SekoiaApiError as exc:  # the circuit is open
            return SendResult.retry(str(exc))
        return self._classify(response)

    def _classify(self, response: HttpResponse) -> SendResult:
        status = response.status
        if 200 <= status < 300:
            return SendResult.delivered(f"Sekoia.io answered HTTP {status}")
        if status in RETRIED_STATUSES:
            return SendResult.retry(
                f"Sekoia.io is unavailable (HTTP {status})", after=response.retry_after()
            )
        reason = REFUSALS.get(status, f"Sekoia.io refused it (HTTP {status})")
        message = _message(response)
        if message:
            reason += ": " + self.api.redact(message)[:200]
        return SendResult.permanent(reason)


def _actions(workflow: dict[str, object]) -> list[tuple[str, str]]:
    found = workflow.get("actions")
    actions: list[tuple[str, str]] = []
    for item in found if isinstance(found, list) else []:
        if isinstance(item, dict):
            uuid, name = item.get("id"), item.get("name")
            if isinstance(uuid, str) and isinstance(name, str) and valid_uuid(uuid):
                actions.append((uuid, name))
    return actions


def _permission_names(me: dict[str, object]) -> set[str] | None:
    found = me.get("permissions")
    if not isinstance(found, list):
        return None
    names = set()
    for item in found:
        if isinstance(item, str):
            names.add(item)
        elif isinstance(item, dict) and isinstance(item.get("name"), str):
            names.add(str(item["name"]))
    return names


def _message(response: HttpResponse) -> str:
    try:
        body = response.json()
    except (ValueError, RecursionError):
        return ""
    found = body.get("message") if isinstance(body, dict) else None
    return " ".join(str(found).split()) if found else ""
