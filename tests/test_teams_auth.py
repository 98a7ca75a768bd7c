"""Teams Workflows flows restricted to the tenant: Entra ID tokens, on loopback fakes only.

The fake Entra ID token endpoint and the fake flow are real aiohttp servers on 127.0.0.1; the
flow accepts only tokens the fake endpoint issued and has not revoked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import pytest
from aiohttp import web

from notirouter.api.sink import Outcome, Sink
from notirouter.delivery.dispatcher import attempt, sink_redactor
from tests.chat_helpers import SECRET
from tests.chat_messages import ALERT
from tests.conftest import TOKEN
from tests.loopback import LoopbackServer
from tests.serving import serve

TENANT = "8f2c1d3e-0000-4000-8000-00000000aaaa"
CLIENT = "1b7e5c9a-0000-4000-8000-00000000bbbb"
CLIENT_SECRET = "Q8~entraClientSecretValue-0123456789"


class FakeEntra:
    """The token endpoint: counts requests, issues tok-1, tok-2, ... after a short delay."""

    def __init__(self, server: LoopbackServer, expires_in: Any = 3599) -> None:
        self.server = server
        self.issued: list[str] = []
        self.expires_in = expires_in
        self.failures: list[web.Response] = []  # answered first, one per request
        server.handler = self.handle

    async def handle(self, request: web.Request, body: bytes) -> web.Response:
        # Long enough for every concurrent delivery to be waiting for the same token.
        await asyncio.sleep(0.05)
        if self.failures:
            return self.failures.pop(0)
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        if form.get("client_secret") != CLIENT_SECRET:
            return web.json_response({"error": "invalid_client"}, status=401)
        token = f"tok-{len(self.issued) + 1}-abcdefghijklmnop"
        self.issued.append(token)
        answer = {"token_type": "Bearer", "expires_in": self.expires_in, "access_token": token}
        return web.json_response(answer)

    @property
    def form(self) -> dict[str, str]:
        """The form of the first token request."""
        return {k: v[0] for k, v in parse_qs(self.server.requests[0].body.decode()).items()}


class FakeFlow:
    """A flow whose trigger admits "Any user in my tenant": a valid bearer token, else 401."""

    def __init__(self, server: LoopbackServer, entra: FakeEntra) -> None:
        self.entra = entra
        self.revoked: set[str] = set()
        self.answer: Callable[[web.Request], web.Response] = lambda _: web.Response(status=202)
        server.handler = self.handle

    def handle(self, request: web.Request, body: bytes) -> web.Response:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ")
        if not header.startswith("Bearer ") or token not in self.entra.issued:
            return web.json_response({"error": {"code": "MisMatchingOAuthClaims"}}, status=401)
        if token in self.revoked:
            return web.json_response({"error": {"code": "ExpiredAuthenticationToken"}}, status=401)
        return self.answer(request)


@pytest.fixture
async def entra_server() -> AsyncIterator[LoopbackServer]:
    server = LoopbackServer()
    await server.start()
    yield server
    await server.stop()


def auth(entra: LoopbackServer, **extra: str) -> dict[str, str]:
    return {
        "tenant_id": TENANT,
        "client_id": CLIENT,
        "client_secret": CLIENT_SECRET,
        "authority": entra.url,
        **extra,
    }


def teams(make_sink: Any, flow: LoopbackServer, entra: LoopbackServer, **extra: Any) -> Sink[Any]:
    url = f"{flow.url}/workflows/{SECRET}/triggers/manual/paths/invoke?sig={SECRET}"
    sink: Sink[Any] = make_sink("teams", url=url, auth=auth(entra), **extra)
    return sink


async def deliver(sink: Sink[Any], count: int = 1) -> list[Any]:
    # Through the core's attempt, which redacts configured secrets from the detail.
    return list(
        await asyncio.gather(*(attempt(sink, ALERT, sink_redactor(sink)) for _ in range(count)))
    )


async def test_one_token_for_many_concurrent_deliveries(
    loopback: LoopbackServer, entra_server: LoopbackServer, make_sink: Any
) -> None:
    entra = FakeEntra(entra_server)
    FakeFlow(loopback, entra)
    sink = teams(make_sink, loopback, entra_server, concurrency=32)
    results = await deliver(sink, 20)
    assert [r.outcome for r in results] == [Outcome.DELIVERED] * 20
    assert len(entra_server.requests) == 1
    assert len(loopback.requests) == 20
    assert {r.headers["Authorization"] for r in loopback.requests} == {f"Bearer {entra.issued[0]}"}
    # Later deliveries reuse the cached token.
    await deliver(sink, 3)
    assert len(entra_server.requests) == 1


async def test_token_request_is_the_client_credentials_grant_for_the_flow_service(
    loopback: LoopbackServer, entra_server: LoopbackServer, make_sink: Any
) -> None:
    entra = FakeEntra(entra_server)
    FakeFlow(loopback, entra)
    await deliver(teams(make_sink, loopback, entra_server))
    request = entra_server.requests[0]
    assert (request.method, request.path) == ("POST", f"/{TENANT}/oauth2/v2.0/token")
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert entra.form == {
        "grant_type": "client_credentials",
        "client_id": CLIENT,
        "client_secret": CLIENT_SECRET,
        # The audience keeps its trailing slash: two slashes before .default.
        "scope": "https://service.flow.microsoft.com//.default",
    }


async def test_a_401_fetches_a_new_token_once_and_delivers(
    loopback: LoopbackServer, entra_server: LoopbackServer, make_sink: Any
) -> None:
    entra = FakeEntra(entra_server)
    flow = FakeFlow(loopback, entra)
    sink = teams(make_sink, loopback, entra_server, concurrency=8)
    await deliver(sink)
    flow.revoked.add(entra.issued[0])  # the flow no longer takes the cached token
    results = await deliver(sink, 5)
    assert [r.outcome for r in results] == [Outcome.DELIVERED] * 5
    assert len(entra.issued) == 2  # one refresh for the five deliveries
    delivered = [
        r for r in loopback.requests if r.headers["Authorization"].endswith(entra.issued[1])
    ]
    assert len(delivered) == 5


async def test_a_second_401_pauses_the_sink_and_keeps_the_message(
    loopback: LoopbackServer, entra_server: LoopbackServer, make_sink: Any
) -> None:
    entra = FakeEntra(entra_server)
    flow = FakeFlow(loopback, entra)
    flow.answer = lambda _: web.json_response({"error": {"code": "Unauthorized"}}, status=401)
    [result] = await deliver(teams(make_sink, loopback, entra_server))
    assert result.outcome is Outcome.RETRY
    assert result.config_error
    assert "does not accept this app" in result.detail
    assert len(entra.issued) == 2
    assert len(loopback.requests) == 2


async def test_a_token_is_renewed_before_it_expires(
    loopback: LoopbackServer, entra_server: LoopbackServer, make_sink: Any
) -> None:
    entra = FakeEntra(entra_server, expires_in="1")  # v1.0 endpoints send a string
    FakeFlow(loopback, entra)
    sink = teams(make_sink, loopback, entra_server)
    await deliver(sink)
    # Renewed at half its life when the life is short: gone after 0.5 s, not after 1 s.
    await asyncio.sleep(0.6)
    [result] = await deliver(sink)
    assert result.outcome is Outcome.DELIVERED
    assert len(entra.issued) == 2
    assert loopback.requests[-1].headers["Authorization"] == f"Bearer {entra.issued[1]}"


@pytest.mark.parametrize(
    ("status", "body", "outcome", "config_error", "says"),
    [
        (
            401,
            {"error": "invalid_client", "error_description": "AADSTS7000215: bad secret"},
            Outcome.RETRY,
            True,
            "invalid_client",
        ),
        (
            400,
            {"error": "invalid_scope", "error_description": "AADSTS70011: scope"},
            Outcome.RETRY,
            True,
            "AADSTS70011",
        ),
        (503, {"error": "temporarily_unavailable"}, Outcome.RETRY, False, "HTTP 503"),
        (429, {}, Outcome.RETRY, False, "HTTP 429"),
    ],
)
async def test_token_failures_keep_the_message_and_never_show_the_secret(
    loopback: LoopbackServer,
    entra_server: LoopbackServer,
    make_sink: Any,
    status: int,
    body: dict[str, str],
    outcome: Outcome,
    config_error: bool,
    says: str,
) -> None:
    entra = FakeEntra(entra_server)
    FakeFlow(loopback, entra)
    # An endpoint echoing the secret it was sent, in its description.
    if "error_description" in body:
        body = {**body, "error_description": f"{body['error_description']} {CLIENT_SECRET}"}
    entra.failures.append(web.json_response(body, status=status))
    sink = teams(make_sink, loopback, entra_server)
    [result] = await deliver(sink)
    assert (result.outcome, result.config_error) == (outcome, config_error)
    assert says in result.detail
    assert CLIENT_SECRET not in result.detail
    assert loopback.requests == []  # nothing posted without a token
    [again] = await deliver(sink)  # the next attempt fetches again and delivers
    assert again.outcome is Outcome.DELIVERED


async def test_an_access_token_echoed_by_the_flow_stays_out_of_the_detail(
    loopback: LoopbackServer, entra_server: LoopbackServer, make_sink: Any
) -> None:
    entra = FakeEntra(entra_server)
    flow = FakeFlow(loopback, entra)
    flow.answer = lambda request: web.Response(
        status=400, text=f"bad card from {request.headers['Authorization']}"
    )
    [result] = await deliver(teams(make_sink, loopback, entra_server))
    assert result.outcome is Outcome.PERMANENT
    assert "bad card" in result.detail
    assert entra.issued[0] not in result.detail


def serve_config(db: Path, flow: LoopbackServer, entra: LoopbackServer) -> str:
    url = f"{flow.url}/workflows/{SECRET}/triggers/manual/paths/invoke?sig={SECRET}"
    return f"""
hooks:
  - {{name: sekoia, token: {TOKEN}}}
queue: {{path: "{db}"}}
delivery: {{backoff_initial: 50ms, backoff_max: 100ms}}
logging: {{level: debug}}
sinks:
  teams:
    type: teams
    url: "{url}"
    concurrency: 16
    rate_limit: 0
    auth:
      tenant_id: {TENANT}
      client_id: {CLIENT}
      client_secret: ${{TEAMS_CLIENT_SECRET}}
      authority: {entra.url}
routes:
  - {{name: all, sinks: [teams]}}
"""


async def test_served_sink_fetches_once_refreshes_and_never_logs_the_secret(
    loopback: LoopbackServer,
    entra_server: LoopbackServer,
    write_config: Callable[..., Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    entra = FakeEntra(entra_server)
    # The first token request fails with the secret echoed: retried, logged, redacted.
    entra.failures.append(
        web.json_response({"error": "x", "error_description": CLIENT_SECRET}, status=500)
    )
    flow = FakeFlow(loopback, entra)
    path = write_config(serve_config(tmp_path / "q.db", loopback, entra_server))
    events = [
        {"type": "alert", "action": "created", "metadata": {"uuid": f"m{n}"}} for n in range(10)
    ]
    async with serve(path, {"TEAMS_CLIENT_SECRET": CLIENT_SECRET}, init_queue=True) as served:
        async with aiohttp.ClientSession() as client:
            for item in events:
                async with client.post(f"{served.url}/hooks/{TOKEN}", json=item) as response:
                    assert response.status == 202
            await loopback.wait_for(10)
            assert len(entra.issued) == 1  # one token for the ten deliveries (after one 500)
            flow.revoked.add(entra.issued[0])
            item = {"type": "alert", "action": "created", "metadata": {"uuid": "after-revoke"}}
            async with client.post(f"{served.url}/hooks/{TOKEN}", json=item) as response:
                assert response.status == 202
            await loopback.wait_for(12)  # a 401, then the same card with the new token
            assert len(entra.issued) == 2
            assert loopback.requests[-1].headers["Authorization"] == f"Bearer {entra.issued[1]}"
        letters = await served.runtime.queue.dead_letters().deliveries()
    assert letters == []
    assert len(loopback.requests) == 12
    text = caplog.text
    assert "HTTP 500" in text  # the failed token request was logged...
    assert CLIENT_SECRET not in text  # ...without the secret it echoed
    for token in entra.issued:
        assert token not in text


async def test_dead_letter_of_an_authorised_sink_holds_no_secret(
    loopback: LoopbackServer,
    entra_server: LoopbackServer,
    write_config: Callable[..., Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    entra = FakeEntra(entra_server)
    flow = FakeFlow(loopback, entra)
    # The flow refuses the card and echoes everything it was sent.
    flow.answer = lambda request: web.Response(
        status=400, text=f"rejected {request.headers['Authorization']} {CLIENT_SECRET}"
    )
    path = write_config(serve_config(tmp_path / "q.db", loopback, entra_server))
    item = {"type": "alert", "action": "created", "metadata": {"uuid": "m1"}}
    async with serve(path, {"TEAMS_CLIENT_SECRET": CLIENT_SECRET}, init_queue=True) as served:
        async with (
            aiohttp.ClientSession() as client,
            client.post(f"{served.url}/hooks/{TOKEN}", json=item) as response,
        ):
            assert response.status == 202
        await loopback.wait_for(1)
        letters: list[Any] = []
        for _ in range(100):
            letters = await served.runtime.queue.dead_letters().deliveries(bodies=True)
            if letters:
                break
            await asyncio.sleep(0.05)
    [letter] = letters
    assert "rejected" in letter.last_error
    stored = f"{letter.last_error} {letter.message_json} {letter.event_body!r}"
    assert CLIENT_SECRET not in stored
    assert entra.issued[0] not in stored
    assert CLIENT_SECRET not in caplog.text
    assert entra.issued[0] not in caplog.text
