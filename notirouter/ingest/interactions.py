"""``POST /interactions/{service}``: clicks on chat action buttons (Slack, Mattermost).

Reachable from the internet by design, so nothing is believed before the sink authenticates
the request (Slack's signature, or the token notirouter signed into a Mattermost button). Any
refusal — no or a wrong signature, a stale timestamp, a replay, a token for another message —
is the same bare ``401`` and changes nothing. A verified click is stored as a durable job in
the same transaction that remembers its signature, and answered at once: the write-back to the
alert's service runs in the interaction worker (``notirouter.delivery.interactions``), well
clear of Slack's three seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from notirouter.api.interaction import CONFIRM_SECONDS, InteractiveSink
from notirouter.ingest.allow_list import admits, client_address
from notirouter.queue.protocol import QueueUnavailable

if TYPE_CHECKING:
    from notirouter.runtime import Runtime

log = logging.getLogger("notirouter.interactions")
# A click is a few kilobytes (Slack sends the message's blocks along): far below a webhook's.
MAX_BODY_BYTES = 256 * 1024
# Slack refuses requests older than five minutes; a signature is remembered twice as long, so
# that it is still known for as long as its timestamp could pass in either direction.
REPLAY_WINDOW_SECONDS = 600.0


def refused() -> Response:
    """The one answer to a request that does not authenticate: no detail at all."""
    return Response(status_code=401)


def interactive_sinks(runtime: Runtime, service: str) -> list[InteractiveSink]:
    """The sinks of ``service`` that have ``actions`` configured."""
    return [
        sink
        for sink in runtime.sinks.values()
        if isinstance(sink, InteractiveSink)
        and sink.interaction_service == service
        and sink.actions() is not None
    ]


async def read_body(request: Request, limit: int) -> bytes | None:
    """The body, or ``None`` once it exceeds ``limit`` bytes (never reading further)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def handler(runtime: Runtime) -> Callable[[Request], Awaitable[Response]]:
    """The route's endpoint, bound to ``runtime`` (whose sinks a reload may replace)."""
    server = runtime.config.app.server

    async def receive_click(request: Request) -> Response:
        service = request.path_params["service"]
        sinks = interactive_sinks(runtime, service)
        if not sinks:
            return JSONResponse({"error": "not found"}, status_code=404)
        if server.interactions_allow is not None:
            peer = request.client.host if request.client else None
            sender = client_address(
                peer, request.headers.getlist("x-forwarded-for"), tuple(server.trusted_proxies)
            )
            if not admits(server.interactions_allow, sender):
                return refused()
        if runtime.draining:
            return JSONResponse({"error": "shutting down"}, status_code=503)
        try:
            body = await read_body(request, min(MAX_BODY_BYTES, server.max_body_bytes))
        except ClientDisconnect:
            return JSONResponse({"error": "incomplete body"}, status_code=400)
        if body is None:
            return JSONResponse({"error": "body too large"}, status_code=413)
        now = time.time()
        headers = {key.lower(): value for key, value in request.headers.items()}
        for sink in sinks:
            click = sink.verify(headers, body, now)
            if click is not None:
                break
        else:
            runtime.metrics.count_received(f"interactions/{service}", "401")
            return refused()
        store = runtime.queue.interactions()
        try:
            if sink.needs_confirmation(click):
                mark = f"confirm:{click.sink}:{click.alert}:{click.action}:{click.user_id}"
                if not await store.toggle_mark(mark, now + CONFIRM_SECONDS):
                    return JSONResponse(sink.answer(click, armed=True) or {})
            stored = await store.enqueue(
                click.sink,
                click.model_dump_json(),
                mark=sink.replay_mark(headers),
                until=now + REPLAY_WINDOW_SECONDS,
            )
        except QueueUnavailable as exc:
            log.error("interactions: a click could not be stored (503): %s", exc)
            return JSONResponse({"error": "queue unavailable"}, status_code=503)
        if not stored:
            runtime.metrics.count_received(f"interactions/{service}", "401")
            log.info("interactions: a replayed %s request was refused", service)
            return refused()
        runtime.metrics.count_received(f"interactions/{service}", "accepted")
        log.info(
            "interactions: %s %s alert %s (sink %s): queued",
            click.user_id,
            click.action.value,
            click.alert,
            click.sink,
        )
        answer = sink.answer(click)
        return Response(status_code=200) if answer is None else JSONResponse(answer)

    return receive_click
