"""The HTTP receiver: ``POST /hooks/{token}``, health, readiness and metrics (DESIGN.md §3.2).

Order of checks: token and the hook's allow-list (404, the same answer as any unknown path),
content type (415), size (413, from ``Content-Length`` or while streaming, never reading past
the limit), JSON (400), event schema (422 with locations), then a durable commit (202) or 503
if the queue cannot commit.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from notirouter.api.operations import OPERATIONAL_EVENT_TYPE
from notirouter.ingest import interactions
from notirouter.ingest.allow_list import Network, admits, client_address
from notirouter.ingest.payload import PayloadRefused, load_payload
from notirouter.queue.protocol import QueueUnavailable
from notirouter.redaction import redact_path
from notirouter.throttled_log import ThrottledLog

if TYPE_CHECKING:
    from notirouter.runtime import Runtime

RESERVED_TYPE = f"type {OPERATIONAL_EVENT_TYPE!r} is reserved for notirouter's own events"
log = logging.getLogger("notirouter.receiver")
access_log = logging.getLogger("notirouter.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyTooLarge(Exception):
    """The request body exceeds ``server.max_body_bytes``."""


def not_found() -> JSONResponse:
    """The one 404 answer, for unknown paths and unknown tokens alike."""
    return JSONResponse({"error": "not found"}, status_code=404)


def error(status: int, reason: str, **extra: Any) -> JSONResponse:
    """A JSON error answer with a short reason."""
    return JSONResponse({"error": reason, **extra}, status_code=status)


def is_json_media_type(content_type: str) -> bool:
    """``application/json`` or any ``+json`` type, parameters ignored."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def read_limited(request: Request, limit: int) -> bytes:
    """Read the body, refusing (without reading further) once it exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(runtime: Runtime) -> Starlette:
    """The Starlette application serving ``runtime`` (started and stopped by its owner)."""
    # uvicorn's access log prints the request path, and the path holds the hook token: switch
    # it off whoever configured logging, and log our own redacted line instead.
    logging.getLogger("uvicorn.access").disabled = True
    max_body = runtime.config.app.server.max_body_bytes
    count = runtime.metrics.count_received
    refusals = ThrottledLog(log)  # during an outage every event is refused the same way
    trusted_proxies = tuple(runtime.config.app.server.trusted_proxies)

    async def receive_hook(request: Request) -> Response:
        hook = runtime.hooks.find(request.path_params["token"])
        if hook is None:
            return not_found()
        if hook.allow is not None:
            # Decided before the body is read; refused like an unknown token, so a sender
            # outside the list cannot tell that the token exists.
            peer = request.client.host if request.client else None
            sender = client_address(
                peer, request.headers.getlist("x-forwarded-for"), trusted_proxies
            )
            if not admits(hook.allow, sender):
                log.debug("hook %s: %s is not in its allow-list (404)", hook.name, sender)
                return not_found()
        if runtime.draining:  # shutting down: the client retries, on this or another instance
            count(hook.name, "503")
            return JSONResponse(
                {"error": "shutting down, retry later"},
                status_code=503,
                headers={"Retry-After": "5"},
            )
        if not is_json_media_type(request.headers.get("content-type", "")):
            count(hook.name, "415")
            return error(415, "content type must be application/json")
        try:
            body = await read_limited(request, max_body)
        except BodyTooLarge:
            count(hook.name, "413")
            return error(413, f"body larger than {max_body} bytes")
        except ClientDisconnect:
            # The client gave up before its body was complete: nothing was stored, nobody reads
            # the answer, and it is no server error.
            count(hook.name, "aborted")
            log.debug("hook %s: the client disconnected before sending its whole body", hook.name)
            return error(400, "incomplete body")
        try:
            payload = load_payload(body)  # UTF-8 JSON object, nesting bounded, text cleaned
        except PayloadRefused as exc:
            count(hook.name, str(exc.status))
            if exc.status == 422:
                return error(422, "invalid event", detail=exc.detail())
            return error(exc.status, exc.reason)
        source = runtime.sources[hook.source]
        try:
            event = source.parse(payload)
        except ValidationError as exc:
            count(hook.name, "422")
            detail = [
                {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
                for e in exc.errors(include_input=False, include_url=False)
            ]
            return error(422, "invalid event", detail=detail)
        if event.type == OPERATIONAL_EVENT_TYPE:
            # notirouter's own events are enqueued by notirouter alone: one from outside would
            # page as "sink failing" or hide a real one. Refused like any invalid event.
            count(hook.name, "422")
            reserved = {"loc": ["type"], "msg": RESERVED_TYPE, "type": "value_error"}
            return error(422, "invalid event", detail=[reserved])
        try:
            result = await runtime.queue.enqueue(
                hook=hook.name,
                source=hook.source,
                dedupe_key=source.dedupe_key(event, body),
                body=body,
            )
        except QueueUnavailable as exc:
            count(hook.name, "503")
            refusals.log(
                logging.ERROR, hook.name, "hook %s: events refused (503): %s", hook.name, exc
            )
            return JSONResponse(
                {"error": "queue unavailable, retry later"},
                status_code=503,
                headers={"Retry-After": "5"},
            )
        if not result.duplicate and runtime.parsed is not None:
            runtime.parsed.keep(result.id, source, event)  # routing need not parse it again
        count(hook.name, "duplicate" if result.duplicate else "accepted")
        return JSONResponse({"id": result.id, "duplicate": result.duplicate}, status_code=202)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        if runtime.draining:
            return JSONResponse({"status": "draining"}, status_code=503)
        if not runtime.healthy:
            return JSONResponse({"status": "a worker loop stopped"}, status_code=503)
        problem = await runtime.queue.readiness()
        if problem is None:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "queue unavailable", "reason": problem}, status_code=503)

    async def metrics(request: Request) -> Response:
        with contextlib.suppress(QueueUnavailable):
            runtime.metrics.set_queue_counts(await runtime.queue.counts())
        return Response(runtime.metrics.render(), media_type="text/plain; version=0.0.4")

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 404:
            return not_found()
        return error(status, "method not allowed" if status == 405 else "error")

    app = Starlette(
        routes=[
            Route("/hooks/{token}", receive_hook, methods=["POST"]),
            Route("/interactions/{service}", interactions.handler(runtime), methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error},
    )
    if runtime.config.app.server.access_log:
        app.add_middleware(AccessLogMiddleware, trusted_proxies=trusted_proxies)
    return app


class AccessLogMiddleware:
    """One line per request with the path redacted (uvicorn's own access log is disabled)."""

    def __init__(self, app: ASGIApp, trusted_proxies: tuple[Network, ...] = ()) -> None:
        self.app = app
        self.trusted_proxies = trusted_proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            client = scope.get("client") or ("-", 0)
            access_log.info(
                '%s "%s %s" %d %.1fms',
                self._sender(client[0], scope),
                scope["method"],
                redact_path(scope["path"]),
                status,
                (time.perf_counter() - started) * 1000,
            )

    def _sender(self, peer: str, scope: Scope) -> str:
        # Behind a trusted proxy, the address it forwarded (parsed, so never a forged text).
        if not self.trusted_proxies:
            return peer
        forwarded = [v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-for"]
        sender = client_address(peer, forwarded, self.trusted_proxies)
        return peer if sender is None else str(sender)
