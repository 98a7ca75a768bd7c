"""Poison input: what the door refuses, and everything it accepts is delivered or visible.

A lone surrogate, deep nesting, a timestamp no platform can show: each was answered ``202``
and then retried for a day, or silently dead at delivery. Against the real server on loopback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from notirouter import Event, Message, hookimpl
from notirouter.api.manager import make_plugin_manager
from notirouter.config.loader import load_config
from notirouter.ingest.payload import MAX_NESTING
from notirouter.runtime import Runtime
from tests.conftest import TOKEN
from tests.loopback import LoopbackServer
from tests.serving import Served, serve

ALERT: dict[str, Any] = {
    "type": "alert",
    "action": "created",
    "attributes": {"uuid": "5696845f-9ecf-4431-9f0f-48ee0ee2eff1", "short_id": "ALEY4fqz8moo"},
}


def config_text(db: Path, sink_url: str, routes: str = "") -> str:
    return f"""
hooks:
  - {{name: sekoia, token: {TOKEN}, source: sekoia}}
queue: {{path: "{db}"}}
sinks:
  forward: {{type: webhook, url: "{sink_url}/a"}}
  other: {{type: webhook, url: "{sink_url}/b"}}
routes:
{
        routes
        or '''  - name: all
    match: {type: "*"}
    sinks: [forward]'''
    }
"""


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post(client: aiohttp.ClientSession, served: Served, body: bytes) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    async with client.post(f"{served.url}/hooks/{TOKEN}", data=body, headers=headers) as r:
        return r.status, await r.json()


def nested(depth: int) -> dict[str, Any]:
    """An object ``depth`` levels deep (the outermost object is level 1)."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def alert_with(attributes: dict[str, Any]) -> dict[str, Any]:
    return {**ALERT, "attributes": {**ALERT["attributes"], **attributes}}


# ED A0 80 is U+D800 written as bytes: json.loads(bytes) takes it through surrogatepass.
RAW_SURROGATE_BODY = json.dumps(alert_with({"title": "X"})).encode().replace(b"X", b"\xed\xa0\x80")


def event_states(served: Served) -> list[tuple[str, int, str | None]]:
    with sqlite3.connect(served.runtime.queue.path) as connection:
        return list(connection.execute("SELECT state, attempts, last_error FROM events"))


async def settled(served: Served) -> list[tuple[str, int, str | None]]:
    """Wait (at most 10 s) until no event is pending any more."""
    for _ in range(500):
        states = event_states(served)
        if not any(state == "pending" for state, _, _ in states):
            return states
        await asyncio.sleep(0.02)
    raise AssertionError(f"events still pending: {states}")


def metric(served: Served, name: str, **labels: str) -> float:
    value = served.runtime.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


@pytest.fixture
async def served(
    tmp_path: Path, write_config: Callable[..., Path], loopback: LoopbackServer
) -> AsyncIterator[Served]:
    async with serve(write_config(config_text(tmp_path / "q.db", loopback.url))) as running:
        yield running


async def test_a_body_that_is_not_utf8_is_refused_with_400(
    served: Served, client: aiohttp.ClientSession
) -> None:
    body = RAW_SURROGATE_BODY
    status, answer = await post(client, served, body)
    at = body.index(b"\xed")
    assert (status, answer["error"]) == (400, f"the body is not UTF-8 (invalid byte at {at})")
    assert event_states(served) == []


async def test_a_lone_surrogate_escape_is_delivered_as_a_replacement_character(
    served: Served, client: aiohttp.ClientSession, loopback: LoopbackServer
) -> None:
    body = json.dumps(alert_with({"title": "\ud800 on host"})).encode()
    assert b"\\ud800" in body
    status, _ = await post(client, served, body)
    assert status == 202
    [request] = await loopback.wait_for(1)
    assert request.json()["event"]["attributes"]["title"] == "\ufffd on host"
    assert await settled(served) == [("routed", 1, None)]


async def test_nesting_beyond_the_limit_is_refused_with_422_naming_where(
    served: Served, client: aiohttp.ClientSession
) -> None:
    for depth in (MAX_NESTING + 1, 230, 600, 5000):
        inner = '{"a": ' * (depth - 3) + "{}" + "}" * (depth - 3)  # json.dumps would recurse
        body = json.dumps(alert_with({"deep": "INNER"})).replace('"INNER"', inner).encode()
        status, answer = await post(client, served, body)
        assert status == 422, depth
        [problem] = answer["detail"]
        assert problem["msg"] == f"nested deeper than {MAX_NESTING} levels"
        if depth < 1000:  # json's own recursion limit stops the deepest before any walk
            assert problem["loc"][:3] == ["attributes", "deep", "a"]
    assert event_states(served) == []


async def test_nesting_at_the_limit_is_delivered(
    served: Served, client: aiohttp.ClientSession, loopback: LoopbackServer
) -> None:
    status, _ = await post(
        client, served, json.dumps(alert_with({"deep": nested(MAX_NESTING - 2)})).encode()
    )
    assert status == 202
    [request] = await loopback.wait_for(1)
    assert "deep" in request.json()["event"]["attributes"]


async def test_nan_is_not_json(served: Served, client: aiohttp.ClientSession) -> None:
    body = b'{"type": "alert", "action": "created", "attributes": {"similar": NaN}}'
    status, answer = await post(client, served, body)
    assert status == 400
    assert "NaN is not a JSON value" in answer["error"]


ROUTES_ISOTIME = """  - name: timed
    match: {type: alert}
    sinks: [forward]
    continue: true
    text: "seen {{ attributes.created_at | isotime }}"
  - name: untimed
    match: {type: alert}
    when: "(attributes.created_at | isotime) != ''"
    sinks: [other]
    continue: true
  - name: conditional
    match: {type: alert}
    when: "attributes.nothing.here > 3"
    sinks: [other]
    continue: true
  - name: recursive
    match: {type: alert}
    sinks: [other]
    title: "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"
"""


async def test_a_template_failure_of_any_type_costs_only_its_own_field(
    tmp_path: Path,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    client: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = write_config(config_text(tmp_path / "q.db", loopback.url, ROUTES_ISOTIME))
    async with serve(path) as served:
        # 1e18 seconds: datetime raises OSError or OverflowError, neither a template error.
        for created in (1e18, 2e18):
            status, _ = await post(
                client, served, json.dumps(alert_with({"created_at": created})).encode()
            )
            assert status == 202
        requests = await loopback.wait_for(6)
        assert await settled(served) == [("routed", 1, None)] * 2
    by_route: dict[str, list[dict[str, Any]]] = {}
    for request in requests:
        by_route.setdefault(request.json()["route"], []).append(request.json())
    assert sorted(by_route) == ["recursive", "timed", "untimed"]
    assert by_route["timed"][0]["text"] == "seen 1e+18"
    # The recursive macro raised RecursionError: that one title falls back to the default.
    assert by_route["recursive"][0]["title"] == "New alert: ALEY4fqz8moo"
    failures = [r.getMessage() for r in caplog.records if "title template failed" in r.message]
    assert len(failures) == 1  # rate-limited: the second event's failure is held back
    assert failures[0].startswith("route recursive: title template failed (RecursionError")
    conditions = [r.getMessage() for r in caplog.records if "when could not" in r.message]
    assert conditions == [
        "route conditional: when could not be evaluated ('dict object' has no attribute "
        "'nothing'); the route does not match"
    ]


async def test_an_event_stored_that_cannot_be_read_back_fails_at_once_and_is_counted(
    served: Served, loopback: LoopbackServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Stored as an earlier version accepted them: 230 levels deep (the stored message could
    # not be read back: a silent dead letter), and raw surrogate bytes (retried for a day).
    queue = served.runtime.queue
    deep = await queue.enqueue(
        hook="sekoia",
        source="sekoia",
        dedupe_key="deep",
        body=json.dumps(alert_with({"deep": nested(228)})).encode(),
    )
    raw = await queue.enqueue(
        hook="sekoia",
        source="sekoia",
        dedupe_key="raw",
        body=RAW_SURROGATE_BODY,
    )
    states = await settled(served)
    at = RAW_SURROGATE_BODY.index(b"\xed")
    assert sorted(states) == [
        ("failed", 1, "cannot parse: nested deeper than 64 levels"),
        ("failed", 1, f"cannot parse: the body is not UTF-8 (invalid byte at {at})"),
    ]
    assert metric(served, "notirouter_events_unroutable_total", stage="parse") == 2
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    for stored in (deep, raw):
        assert any(line.startswith(f"event {stored.id} cannot parse:") for line in logged)
    assert loopback.requests == []
    with sqlite3.connect(queue.path) as connection:
        assert connection.execute("SELECT COUNT(*) FROM deliveries").fetchone() == (0,)


class _BrokenFormatter:
    """A third-party formatter with a bug on some events' data."""

    @hookimpl
    def format_message(self, event: Event, variables: Mapping[str, Any]) -> Message | None:
        raise OSError(f"cannot format {event.type}")


async def test_a_formatter_that_raises_falls_back_to_the_generic_message_for_every_route(
    write_config: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    path = write_config(
        """
sinks: {a: {type: log}}
routes:
  - {name: titled, sinks: [a], continue: true, title: "custom {{ type }}"}
  - {name: plain, sinks: [a]}
"""
    )

    def factory(blocked: Any) -> Any:
        return make_plugin_manager(
            blocked=[*blocked, "sekoia_messages"], extra_plugins=[("broken", _BrokenFormatter())]
        )

    pipeline = Runtime(load_config(path, environ={}, manager_factory=factory)).pipeline
    for _ in range(3):
        routed = await pipeline.route(pipeline.parse("sekoia", ALERT))
        titles = {route.name: message.title for route, message in routed.messages}
        assert titles == {"titled": "custom alert", "plain": "alert created"}
    warnings = [r for r in caplog.records if "the formatter failed" in r.getMessage()]
    assert len(warnings) == 1  # once per event type and minute, not once per event
    assert warnings[0].getMessage() == (
        "the formatter failed for a alert event (OSError: cannot format alert); "
        "using the generic message"
    )
