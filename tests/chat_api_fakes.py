"""Loopback fakes of chat services' message APIs that hand out message ids: Slack's Web API
(``chat.postMessage``, ``chat.update``) and a Discord webhook (``?wait=true``, ``PATCH``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web

from tests.loopback import LoopbackServer


@dataclass
class Call:
    """One API call as the fake understood it."""

    method: str
    body: dict[str, Any]
    query: str = ""
    path: str = ""


@dataclass
class SlackFake:
    """Slack's Web API: posts get ``ts`` 1000.000001, 1000.000002, ...; edits are ok.

    ``refuse_edits`` answers ``chat.update`` with ``message_not_found`` (the message deleted);
    ``user_groups`` (id -> member ids) answers ``usergroups.users.list``.
    """

    channel: str = "C0ALERTS"
    calls: list[Call] = field(default_factory=list)
    refuse_edits: bool = False
    posted: int = 0
    user_groups: dict[str, list[str]] = field(default_factory=dict)

    def install(self, server: LoopbackServer) -> None:
        """Answer the server's requests as Slack's Web API."""
        server.handler = self.handle

    def handle(self, request: web.Request, body: bytes) -> web.Response:
        method = request.path.rsplit("/", 1)[-1]
        if request.path.startswith("/response/"):
            # A click's response_url: no token, the answer goes to the user who clicked.
            self.calls.append(Call("response_url", json.loads(body), path=request.path))
            return web.Response(text="ok")
        if request.headers.get("Authorization") != "Bearer xoxb-test-token":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        if method == "usergroups.users.list":  # a read method: form-encoded
            group = parse_qs(body.decode()).get("usergroup", [""])[0]
            self.calls.append(Call(method, {"usergroup": group}))
            if group not in self.user_groups:
                return web.json_response({"ok": False, "error": "no_such_subteam"})
            return web.json_response({"ok": True, "users": self.user_groups[group]})
        data = json.loads(body)
        self.calls.append(Call(method, data))
        if method == "chat.postMessage":
            self.posted += 1
            return web.json_response(
                {"ok": True, "channel": self.channel, "ts": f"1000.{self.posted:06d}"}
            )
        if method == "chat.update":
            if self.refuse_edits:
                return web.json_response({"ok": False, "error": "message_not_found"})
            return web.json_response({"ok": True, "channel": data["channel"], "ts": data["ts"]})
        return web.json_response({"ok": False, "error": "unknown_method"})

    def roots(self) -> list[Call]:
        """Posts that started a conversation (no ``thread_ts``)."""
        return [
            c for c in self.calls if c.method == "chat.postMessage" and "thread_ts" not in c.body
        ]

    def shape(self) -> list[str]:
        """The calls as ``post``, ``update <ts>`` and ``reply <thread_ts>``, in order."""
        shown = []
        for call in self.calls:
            if call.method == "response_url":
                shown.append("response_url")
            elif call.method == "chat.update":
                shown.append(f"update {call.body['ts']}")
            elif "thread_ts" in call.body:
                shown.append(f"reply {call.body['thread_ts']}")
            else:
                shown.append("post")
        return shown


@dataclass
class DiscordFake:
    """A Discord webhook: ``?wait=true`` posts get ids 9001, 9002, ...; PATCH edits them."""

    calls: list[Call] = field(default_factory=list)
    posted: int = 0

    def install(self, server: LoopbackServer) -> None:
        """Answer the server's requests as a Discord webhook."""
        server.handler = self.handle

    def handle(self, request: web.Request, body: bytes) -> web.Response:
        data = json.loads(body) if body else {}
        self.calls.append(Call(request.method, data, request.query_string, request.path))
        if request.method == "POST":
            if request.query.get("wait") != "true":
                return web.Response(status=204)
            self.posted += 1
            # A forum post opens a thread of its own; else the thread asked for, or the channel.
            channel = request.query.get("thread_id", "5000")
            if "thread_name" in data:
                channel = str(7000 + self.posted)
            return web.json_response({"id": str(9000 + self.posted), "channel_id": channel})
        if request.method == "PATCH":
            message_id = request.path.rsplit("/", 1)[-1]
            channel = request.query.get("thread_id", "5000")
            return web.json_response({"id": message_id, "channel_id": channel})
        return web.json_response({"code": 0, "message": "405: Method Not Allowed"}, status=405)

    def shape(self) -> list[str]:
        """The calls as ``post``, ``post <thread>``, ``edit <id> <thread>``, in order."""
        shown = []
        for call in self.calls:
            query = dict(part.split("=", 1) for part in call.query.split("&") if part)
            thread = query.get("thread_id", "")
            if call.method == "PATCH":
                shown.append(f"edit {call.path.rsplit('/', 1)[-1]} {thread}".strip())
            else:
                shown.append(f"post {thread}".strip())
        return shown


@dataclass
class MattermostFake:
    """Mattermost's REST API: posts get ids ``p0000…01``, ``p0000…02``, …; patches are ok and
    kept (``GET /api/v4/posts/{id}`` shows the post as patched); ephemeral posts are recorded.

    ``deleted`` lists post ids whose patch answers 404 (the post was deleted);
    ``ephemeral_allowed: False`` refuses ephemeral posts (403), as for a bot without the
    ``create_post_ephemeral`` permission.
    """

    calls: list[Call] = field(default_factory=list)
    deleted: set[str] = field(default_factory=set)
    posted: int = 0
    posts: dict[str, dict[str, Any]] = field(default_factory=dict)
    ephemeral_allowed: bool = True

    def install(self, server: LoopbackServer) -> None:
        """Answer the server's requests as Mattermost's API."""
        server.handler = self.handle

    def handle(self, request: web.Request, body: bytes) -> web.Response:
        if request.headers.get("Authorization") != "Bearer mm-test-token":
            return web.json_response({"id": "api.context.session_expired.app_error"}, status=401)
        data = json.loads(body) if body else {}
        if request.method == "GET":
            post = self.posts.get(request.path.rsplit("/", 1)[-1])
            if post is None:
                return web.json_response({"id": "app.post.get.app_error"}, status=404)
            return web.json_response(post)
        self.calls.append(Call(request.method, data, request.query_string, request.path))
        if request.method == "POST" and request.path == "/api/v4/posts/ephemeral":
            if not self.ephemeral_allowed:  # the token lacks create_post_ephemeral
                return web.json_response({"id": "api.context.permissions.app_error"}, status=403)
            return web.json_response({"id": "e" * 26, **data["post"]}, status=201)
        if request.method == "POST" and request.path == "/api/v4/posts":
            self.posted += 1
            post_id = f"p{self.posted:025d}"
            self.posts[post_id] = {"id": post_id, **data}
            return web.json_response(self.posts[post_id], status=201)
        post_id = request.path.split("/")[-2]
        if request.method == "PUT" and request.path.endswith("/patch"):
            if post_id in self.deleted:
                return web.json_response({"id": "app.post.get.app_error"}, status=404)
            self.posts.setdefault(post_id, {"id": post_id}).update(data)
            return web.json_response(self.posts[post_id])
        return web.json_response({"id": "api.context.404.app_error"}, status=404)

    def shape(self) -> list[str]:
        """The calls as ``post``, ``patch <id>``, ``reply <root_id>`` and ``ephemeral``."""
        shown = []
        for call in self.calls:
            if call.method == "PUT":
                shown.append(f"patch {call.path.split('/')[-2]}")
            elif call.path.endswith("/ephemeral"):
                shown.append("ephemeral")
            elif "root_id" in call.body:
                shown.append(f"reply {call.body['root_id']}")
            else:
                shown.append("post")
        return shown
