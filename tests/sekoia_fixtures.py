"""A loopback HTTP server playing the Sekoia.io API, and event and object samples.

The JSON shapes are those of ``shared/reference/sekoia.md``: the compact alert of §2.4(a), the
case of §4.1, and the v2 webhook events of §1. The server answers
``GET /v1/sic/alerts/{id}``, ``GET /v1/sic/alerts/{id}/comments/{id}`` and
``GET /v1/sic/cases/{id}`` from its objects, and the alert list ``GET /v1/sic/alerts`` with its
``date[updated_at]``, ``match[community_uuid]``, ``sort=updated_at``, ``limit`` and ``offset``
filters (``{"total", "has_more", "items"}``); it checks the bearer key, and can be told to fail.
For chat actions it also answers ``GET``/``PATCH /v1/sic/alerts/{id}/workflow`` (recording each
PATCH), ``POST /v1/sic/alerts/{id}/comments`` (recording each comment) and ``GET /v1/me``.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from tests.loopback import LoopbackServer

API_KEY = "sk-test-0123456789abcdef-SECRET"
ALERT_UUID = "adc66869-25e6-4d7f-987b-5e1bcdf8f256"
ALERT_SHORT_ID = "ALakbd8NXp9W"
CASE_UUID = "f014aac5-2d38-49f6-a47f-ff602c734d51"
COMMENT_UUID = "5869b4d8-e3bb-4465-baad-95daf28267c7"
COMMUNITY = "c766cfab-a604-41c5-b95b-c7cc467f7fc4"
# The workflow actions the alert offers: uuids that are found by name, never known in advance.
WORKFLOW_ACTIONS = [
    {"id": "9d2a4b5e-0c1f-4e7a-8b3d-2f6e1a7c9b01", "name": "Acknowledge", "description": "Ack"},
    {"id": "4c8e7f3a-1b2d-4a6e-9f0c-5d3b2e1a8c02", "name": "Reject", "description": "FP"},
    {"id": "7b1c9e2d-3f4a-4b5c-8d6e-0a9f1e2d3c03", "name": "Validate", "description": "Go"},
]

ALERT: dict[str, Any] = {
    "uuid": ALERT_UUID,
    "title": "Suspicious PowerShell download",
    "created_at": 1729859653,
    "created_by": "a5fe93d8-e910-494b-ab83-8565fa2e5916",
    "created_by_type": "application",
    "updated_at": 1729859653,
    "community_uuid": COMMUNITY,
    "short_id": ALERT_SHORT_ID,
    "entity": {"uuid": "b050c91e-9b5f-4c6d-a879-c1370f714596", "name": "Paris HQ"},
    "urgency": {
        "current_value": 60,
        "value": 60,
        "severity": 60,
        "criticity": 0,
        "display": "Major",
    },
    "alert_type": {"value": "malware", "category": "malicious-code"},
    "status": {
        "uuid": "b6f4cc39-6cc8-473a-a8eb-62c3c50275f0",
        "name": "Pending",
        "description": "The alert is waiting for action",
    },
    "rule": {
        "uuid": "f374bddf-8d2a-402b-b214-5feaf411d919",
        "name": "PowerShell web download",
        "severity": 60,
        "type": "cti",
        "pattern": "[network-traffic:dst_ref.value = '5.6.7.8']",
    },
    "detection_type": "CTI",
    "source": "1.2.3.4",
    "target": "5.6.7.8",
    "similar": 3,
    "details": "PowerShell fetched a script from a known malicious host.",
    "ttps": [],
    "adversaries": [],
    "stix": {},
    "kill_chain_short_id": "k1llch41n",
    "first_seen_at": "2024-12-15T12:29:08.454603Z",
    "last_seen_at": "2024-12-15T13:01:00Z",
    "assets": ["71dd4c6c-8962-46f2-8b87-c44825bccac9"],
}

COMMENT: dict[str, Any] = {
    "uuid": COMMENT_UUID,
    "content": "Host isolated, investigating.",
    "author": "Alice Martin",
    "date": 1729860000,
    "created_by": "c110d686-0b45-4ae7-b917-f15486d0f8c7",
    "created_by_type": "user",
}

CASE: dict[str, Any] = {
    "uuid": CASE_UUID,
    "short_id": "CAmDUb2Anct1e",
    "created_at": "2024-10-25T18:32:06.464890+00:00",
    "updated_at": "2025-03-17T15:04:04.858932+00:00",
    "title": "Ransomware precursor on Paris HQ",
    "description": "Grouping the PowerShell alerts.",
    "priority": "high",
    "status": "opened",
    "status_uuid": "210e3788-1f95-4e04-accf-a48134f97413",
    "community_uuid": COMMUNITY,
    "tags": [],
    "number_of_comments": 0,
    "first_seen_at": "2024-10-25T12:29:08.454603Z",
    "last_seen_at": "2025-03-17T15:03:42.417292Z",
    "manual": True,
    "number_of_alerts": 3,
    "alerts": [{"uuid": ALERT_UUID, "short_id": ALERT_SHORT_ID}],
}


def metadata(created_at: str = "2024-10-25T12:00:00+00:00", **extra: Any) -> dict[str, Any]:
    """Webhook ``metadata`` (version 2)."""
    return {"version": 2, "created_at": created_at, "community_uuid": COMMUNITY, **extra}


def alert_event(action: str = "created", **attributes: Any) -> dict[str, Any]:
    """An ``alert`` webhook event about :data:`ALERT` (attributes override the ids)."""
    body = {"uuid": ALERT_UUID, "short_id": ALERT_SHORT_ID, **attributes}
    return {"type": "alert", "action": action, "attributes": body, "metadata": metadata()}


def comment_event() -> dict[str, Any]:
    """An ``alert-comment``/``created`` event (shape of the LiveAPI fixture)."""
    return {
        "type": "alert-comment",
        "action": "created",
        "attributes": {
            "content": "Host isolated, investigating.",
            "created_by": "c110d686-0b45-4ae7-b917-f15486d0f8c7",
            "created_by_type": "user",
            "alert_uuid": ALERT_UUID,
            "alert_short_id": ALERT_SHORT_ID,
            "uuid": COMMENT_UUID,
        },
        "metadata": metadata(),
    }


def case_event(action: str = "created", **extra: Any) -> dict[str, Any]:
    """A ``case`` event about :data:`CASE`."""
    attributes = {
        "uuid": CASE_UUID,
        "short_id": "CAmDUb2Anct1e",
        "manual": True,
        "title": "Ransomware precursor on Paris HQ",
        "priority": "high",
        "created_at": "2025-02-06T15:05:44.016485",
        **extra,
    }
    return {"type": "case", "action": action, "attributes": attributes, "metadata": metadata()}


@dataclass
class Failure:
    """Answer ``status`` (with ``headers``) to the next ``times`` API requests."""

    status: int
    times: int = 1_000_000
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class FakeSekoia:
    """The Sekoia.io API on a :class:`LoopbackServer`, with scripted failures."""

    def __init__(self, server: LoopbackServer) -> None:
        self.server = server
        self.alerts: dict[str, dict[str, Any]] = {
            ALERT_UUID: copy.deepcopy(ALERT),
            ALERT_SHORT_ID: copy.deepcopy(ALERT),
        }
        self.comments = {COMMENT_UUID: copy.deepcopy(COMMENT)}
        self.cases = {CASE_UUID: copy.deepcopy(CASE)}
        self.failures: list[Failure] = []
        # Failures of the workflow PATCH alone (a transition refused, the API down for writes).
        self.write_failures: list[Failure] = []
        self.workflow_actions = copy.deepcopy(WORKFLOW_ACTIONS)
        self.patches: list[dict[str, Any]] = []
        self.posted_comments: list[dict[str, Any]] = []
        self.me: dict[str, Any] = {"uuid": "a5fe93d8-e910-494b-ab83-8565fa2e5916"}
        self.delay = 0.0
        # Object kind ("alert", "comment", "case") -> status answered to every request for it:
        # a key without the permission for one endpoint (403) is refused there only.
        self.refuse: dict[str, int] = {}
        # Alerts the list does not show (a webhook test decides when the API "has" them).
        self.unlisted: set[str] = set()
        self.ignore_offset = False  # a list that always answers its first page
        server.handler = self._handle

    @property
    def url(self) -> str:
        """The base URL to configure as ``base_url``."""
        return self.server.url

    @property
    def paths(self) -> list[str]:
        """Paths of every request received, in order."""
        return [request.path for request in self.server.requests]

    @property
    def list_queries(self) -> list[dict[str, str]]:
        """The query of every alert list request, in order."""
        return [
            dict(parse_qsl(r.query)) for r in self.server.requests if r.path == "/v1/sic/alerts"
        ]

    def put_alert(self, alert: dict[str, Any]) -> None:
        """Store (or replace) an alert under its uuid and short id."""
        self.alerts[alert["uuid"]] = copy.deepcopy(alert)
        self.alerts[alert["short_id"]] = copy.deepcopy(alert)

    def update_alert(self, uuid: str, updated_at: int, **changes: Any) -> None:
        """Change an alert: a new ``updated_at`` and fields."""
        alert = {**self.alerts[uuid], **changes, "updated_at": updated_at}
        self.put_alert(alert)

    def fail(self, *failures: Failure) -> None:
        """Fail the next requests as listed, then answer normally."""
        self.failures = list(failures)

    def _failure(self) -> Failure | None:
        while self.failures and self.failures[0].times <= 0:
            self.failures.pop(0)
        if not self.failures:
            return None
        self.failures[0].times -= 1
        return self.failures[0]

    async def _handle(self, request: web.Request, body: bytes) -> web.StreamResponse:
        failure = self._failure()
        delay = failure.delay if failure is not None else self.delay
        # The answer is the state when the request arrived, however late it is sent: a change
        # made meanwhile shows only in a later request, as with a real API.
        response = self._answer(request, failure, body)
        if delay:
            await asyncio.sleep(delay)
        return response

    def _patch(self, alert: str, body: bytes) -> web.Response:
        while self.write_failures and self.write_failures[0].times <= 0:
            self.write_failures.pop(0)
        if self.write_failures:
            failure = self.write_failures[0]
            failure.times -= 1
            return _json(failure.status, {"message": "scripted refusal"}, failure.headers)
        if alert not in self.alerts:
            return _json(404, {"message": "Not found"})
        self.patches.append({"alert": alert, **json.loads(body)})
        return _json(200, {"uuid": alert})

    def _answer(
        self, request: web.Request, failure: Failure | None, body: bytes = b""
    ) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return _json(401, {"message": "Unauthorized"})
        refused = self.refuse.get(_kind(request.path.split("/")))
        if refused is not None:
            return _json(refused, {"message": "Forbidden" if refused == 403 else "Unauthorized"})
        if failure is not None:
            return _json(failure.status, {"message": "scripted failure"}, failure.headers)
        if request.path == "/v1/sic/alerts":
            return _json(200, self._list(dict(request.query)))
        parts = request.path.split("/")
        match request.method, parts:
            case "PATCH", ["", "v1", "sic", "alerts", alert, "workflow"]:
                return self._patch(alert, body)
            case "POST", ["", "v1", "sic", "alerts", alert, "comments"]:
                if alert not in self.alerts:
                    return _json(404, {"message": "Not found"})
                self.posted_comments.append({"alert": alert, **json.loads(body)})
                return _json(200, {"uuid": "c0ffee00-0000-4000-8000-000000000001"})
            case "GET", ["", "v1", "sic", "alerts", alert, "workflow"]:
                if alert not in self.alerts:
                    return _json(404, {"message": "Not found"})
                return _json(200, {"actions": self.workflow_actions})
            case "GET", ["", "v1", "me"]:
                return _json(200, self.me)
        found = self._lookup(parts)
        if found is None:
            return _json(404, {"message": "Not found", "code": "SIC404"})
        return _json(200, found)

    def _lookup(self, parts: list[str]) -> dict[str, Any] | None:
        match parts:
            case ["", "v1", "sic", "alerts", alert]:
                return self.alerts.get(alert)
            case ["", "v1", "sic", "alerts", alert, "comments", comment]:
                return self.comments.get(comment) if alert in self.alerts else None
            case ["", "v1", "sic", "cases", case]:
                return self.cases.get(case)
        return None

    def _list(self, query: dict[str, str]) -> dict[str, Any]:
        low, _, high = query.get("date[updated_at]", "").partition(",")
        since = _api_time(low) if low else 0.0
        until = time.time() + 1 if high in ("", "now") else _api_time(high)
        community = query.get("match[community_uuid]")
        assert query.get("sort") == "updated_at"
        unique = {alert["uuid"]: alert for alert in self.alerts.values()}
        listed = sorted(
            (
                alert
                for uuid, alert in unique.items()
                if uuid not in self.unlisted
                and since <= alert["updated_at"] < until + 1
                and (community is None or alert["community_uuid"] == community)
            ),
            key=lambda alert: (alert["updated_at"], alert["uuid"]),
        )
        offset, limit = int(query.get("offset", "0")), int(query.get("limit", "100"))
        offset = 0 if self.ignore_offset else offset
        return {
            "total": len(listed),
            "has_more": offset + limit < len(listed),
            "items": copy.deepcopy(listed[offset : offset + limit]),
        }


def _api_time(text: str) -> float:
    # The list filter's format: YYYY-MM-DDTHH:MM:SS, UTC, to the second.
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()


def new_alert(n: int, at: int, community: str = COMMUNITY) -> dict[str, Any]:
    """Alert number ``n``, created (and last updated) at epoch second ``at``."""
    return {
        **copy.deepcopy(ALERT),
        "uuid": f"00000000-0000-4000-8000-{n:012d}",
        "short_id": f"ALrecon{n:06d}",
        "title": f"Alert number {n}",
        "created_at": at,
        "updated_at": at,
        "community_uuid": community,
    }


def _kind(parts: list[str]) -> str:
    match parts:
        case ["", "v1", "sic", "alerts", _, "comments", *_]:
            return "comment"
        case ["", "v1", "sic", "alerts", *_]:
            return "alert"
        case ["", "v1", "sic", "cases", *_]:
            return "case"
    return ""


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(payload),
        content_type="application/json",
        headers=headers or {},
    )


def walk_strings(value: Any) -> Iterator[str]:
    """Every string inside a JSON value (to look for leaked secrets)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from walk_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk_strings(item)
