"""The webhook sink against a real HTTP server on loopback."""

from __future__ import annotations

from typing import Any

import pytest

from notirouter.api.http import TransportError
from notirouter.api.message import Fact, Message, Severity
from notirouter.api.sink import Outcome
from tests.loopback import LoopbackServer, Reply

MESSAGE = Message(
    title="Suspicious login",
    text="Many failures",
    severity=Severity.HIGH,
    link="https://app.sekoia.io/operations/alerts/ALabc",
    facts=(Fact(name="Host", value="srv-01"),),
    thread_key="5696845f-9ecf-4431-9f0f-48ee0ee2eff1",
    route="r1",
    event={"type": "alert", "action": "created", "attributes": {"short_id": "ALabc"}},
    enrichment={"alert": {"title": "Suspicious login", "urgency": {"current_value": 80}}},
)


async def test_default_body_is_message_event_and_enrichment(
    loopback: LoopbackServer, make_sink: Any
) -> None:
    sink = make_sink("webhook", url=f"{loopback.url}/notify", headers={"X-Key": "k-123"})
    result = await sink.send(MESSAGE)
    assert result.outcome is Outcome.DELIVERED
    request = loopback.requests[0]
    assert request.method == "POST"
    assert request.path == "/notify"
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    assert request.headers["X-Key"] == "k-123"
    body = request.json()
    assert body["title"] == "Suspicious login"
    assert body["severity"] == "high"
    assert body["facts"] == [{"name": "Host", "value": "srv-01"}]
    assert body["event"]["attributes"]["short_id"] == "ALabc"
    assert body["enrichment"]["alert"]["urgency"]["current_value"] == 80


async def test_payload_template_renders_json(loopback: LoopbackServer, make_sink: Any) -> None:
    template = (
        '{"summary": {{ message.title | tojson }}, "urgency": {{ alert.urgency.current_value }}}'
    )
    sink = make_sink("webhook", url=loopback.url, payload=template)
    assert (await sink.send(MESSAGE)).outcome is Outcome.DELIVERED
    assert loopback.requests[0].json() == {"summary": "Suspicious login", "urgency": 80}


async def test_payload_template_keeps_hostile_text_as_json_data(
    loopback: LoopbackServer, make_sink: Any
) -> None:
    hostile = MESSAGE.model_copy(update={"title": '"}, "admin": true, "x": {"'})
    sink = make_sink("webhook", url=loopback.url, payload='{"t": {{ message.title | tojson }}}')
    assert (await sink.send(hostile)).outcome is Outcome.DELIVERED
    assert loopback.requests[0].json() == {"t": '"}, "admin": true, "x": {"'}


async def test_template_rendering_invalid_json_is_permanent(
    loopback: LoopbackServer, make_sink: Any
) -> None:
    sink = make_sink("webhook", url=loopback.url, payload="not json {{ message.title }}")
    result = await sink.send(MESSAGE)
    assert result.outcome is Outcome.PERMANENT
    assert "did not render JSON" in result.detail
    assert loopback.requests == []


@pytest.mark.parametrize(
    ("reply", "outcome"),
    [
        (Reply(200, "ok"), Outcome.DELIVERED),
        (Reply(204), Outcome.DELIVERED),
        (Reply(202, "{}"), Outcome.DELIVERED),
        (Reply(400, "bad"), Outcome.PERMANENT),
        (Reply(401), Outcome.PERMANENT),
        (Reply(404), Outcome.PERMANENT),
        (Reply(410), Outcome.PERMANENT),
        (Reply(301, headers={"Location": "http://127.0.0.1:1/elsewhere"}), Outcome.PERMANENT),
        (Reply(408), Outcome.RETRY),
        (Reply(425), Outcome.RETRY),
        (Reply(429), Outcome.RETRY),
        (Reply(500, "boom"), Outcome.RETRY),
        (Reply(503), Outcome.RETRY),
    ],
)
async def test_status_classification(
    loopback: LoopbackServer, make_sink: Any, reply: Reply, outcome: Outcome
) -> None:
    loopback.reply(reply)
    result = await make_sink("webhook", url=loopback.url).send(MESSAGE)
    assert result.outcome is outcome
    assert len(loopback.requests) == 1  # redirects are not followed


async def test_retry_after_is_reported(loopback: LoopbackServer, make_sink: Any) -> None:
    loopback.reply(Reply(429, "slow down", {"Retry-After": "7"}))
    result = await make_sink("webhook", url=loopback.url).send(MESSAGE)
    assert result.outcome is Outcome.RETRY
    assert result.retry_after == 7.0


async def test_connection_refused_is_transport_error_without_path(make_sink: Any) -> None:
    sink = make_sink("webhook", url="http://127.0.0.1:9/secret-path-token")
    with pytest.raises(TransportError) as caught:
        await sink.send(MESSAGE)
    assert "secret-path-token" not in str(caught.value)


async def test_timeout_is_transport_error(loopback: LoopbackServer, make_sink: Any) -> None:
    loopback.reply(Reply(200, "late", delay=2))
    sink = make_sink("webhook", url=loopback.url, timeout=0.3)
    with pytest.raises(TransportError, match="no answer within"):
        await sink.send(MESSAGE)


async def test_a_response_body_arriving_in_pieces_is_read_whole(
    loopback: LoopbackServer, http_client: Any
) -> None:
    from aiohttp import web

    from notirouter.api.http import HttpRequest

    body = b'{"items": "' + b"x" * 300_000 + b'"}'

    async def chunked(request: web.Request, _: bytes) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        await response.prepare(request)
        for start in range(0, len(body), 7_000):
            await response.write(body[start : start + 7_000])
        await response.write_eof()
        return response

    loopback.handler = chunked
    answer = await http_client.send(HttpRequest(url=loopback.url, method="GET"), timeout=5)
    assert answer.body == body and not answer.truncated
    small = await http_client.send(
        HttpRequest(url=loopback.url, method="GET", max_response_bytes=1000), timeout=5
    )
    assert len(small.body) == 1000 and small.truncated
