"""Storm control, item 2: notify on change, through a real ``serve`` on both backends.

The alert's state comes from the loopback Sekoia.io API (the enricher fetches it per event): an
update whose listed values did not change since the last notification sends nothing and says so
in its routing record; one that changed sends a message naming the change. The values last
notified live in the queue, so a restart keeps them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from notirouter.cli import main
from notirouter.config.errors import ConfigError
from notirouter.config.loader import load_config_text
from notirouter.config.models import QueueConfig
from notirouter.routing.notify_on import change_label
from tests.backends import Backend
from tests.conftest import TOKEN
from tests.loopback import LoopbackServer
from tests.sekoia_fixtures import ALERT_UUID, API_KEY, FakeSekoia, alert_event, metadata
from tests.serving import Served, serve

NOTIFY_ON = '{key: "{{ alert.uuid }}", changes: [alert.status.name, alert.urgency.display]}'


def config(backend: Backend, api: str, sink: str, notify_on: str = NOTIFY_ON) -> str:
    return f"""
hooks:
  - {{name: sekoia, token: {TOKEN}}}
queue: {backend.yaml()}
delivery: {{backoff_initial: 50ms, backoff_max: 200ms, lease: 30s}}
server: {{access_log: false}}
enrichers:
  sekoia: {{type: sekoia, api_key: {API_KEY}, base_url: "{api}", region: fra1, cache_window: 0s}}
sinks:
  a: {{type: webhook, url: "{sink}"}}
routes:
  - name: alerts
    match: {{type: alert}}
    enrich: [sekoia]
    sinks: [a]
    notify_on: {notify_on}
"""


@pytest.fixture
async def sekoia() -> AsyncIterator[FakeSekoia]:
    server = LoopbackServer()
    await server.start()
    try:
        yield FakeSekoia(server)
    finally:
        await server.stop()


def event(n: int, action: str = "updated", **attributes: Any) -> dict[str, Any]:
    return alert_event(action, **attributes) | {"metadata": metadata(uuid=f"m{n}")}


async def post(served: Served, body: dict[str, Any]) -> str:
    async with (
        aiohttp.ClientSession() as client,
        client.post(f"{served.url}/hooks/{TOKEN}", json=body) as response,
    ):
        assert response.status == 202
        answer = await response.json()
    return str(answer["id"])


async def routing_of(served: Served, event_id: str) -> dict[str, Any]:
    """The event's routing record once it is routed (at most 10 s)."""
    for _ in range(200):
        story = await served.runtime.queue.inspection().event_story(event_id)
        if story is not None and story.routing is not None:
            record: dict[str, Any] = json.loads(story.routing)
            return record
        await asyncio.sleep(0.05)
    raise AssertionError(f"event {event_id} was not routed")


def set_alert(sekoia: FakeSekoia, **changes: Any) -> None:
    for alert in sekoia.alerts.values():
        for path, value in changes.items():
            target = alert
            *parents, leaf = path.split("__")
            for parent in parents:
                target = target[parent]
            target[leaf] = value


def changed_fact(message: dict[str, Any]) -> str | None:
    return next((f["value"] for f in message["facts"] if f["name"] == "Changed"), None)


async def test_created_unchanged_update_then_status_change_gives_two_messages(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    sekoia: FakeSekoia,
) -> None:
    path = write_config(config(queue_backend, sekoia.url, loopback.url))
    async with serve(path) as served:
        created = await post(served, event(1, "created"))
        await loopback.wait_for(1, timeout=15)
        first = await routing_of(served, created)
        assert first["routes"][0]["notify_on"]["first"] is True

        set_alert(sekoia, updated_at=1729860000, similar=4)  # nothing listed changes
        unchanged = await post(served, event(2, updated={"similar": 4}))
        record = (await routing_of(served, unchanged))["routes"][0]
        assert record["notify_on"]["changed"] is False
        assert record["notify_on"]["key"] == ALERT_UUID
        assert record["notify_on"]["values"] == {
            "alert.status.name": "Pending",
            "alert.urgency.display": "Major",
        }
        story = await served.runtime.queue.inspection().event_story(unchanged)
        assert story is not None and story.deliveries == []

        set_alert(sekoia, status__name="Acknowledged")
        changed = await post(served, event(3, updated={"status_name": "Acknowledged"}))
        await loopback.wait_for(2, timeout=15)
        record = (await routing_of(served, changed))["routes"][0]
        assert record["notify_on"]["changed"] is True
        assert record["notify_on"]["changes"] == [["alert.status.name", "Pending", "Acknowledged"]]
        await asyncio.sleep(0.5)  # a third message would have arrived by now
    messages = [r.json() for r in loopback.requests]
    assert len(messages) == 2
    assert changed_fact(messages[0]) is None
    assert changed_fact(messages[1]) == "status Pending → Acknowledged"
    assert messages[1]["facts"][0]["name"] == "Changed"  # first: what the reader looks for


async def test_the_values_notified_survive_a_restart(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    sekoia: FakeSekoia,
) -> None:
    path = write_config(config(queue_backend, sekoia.url, loopback.url))
    async with serve(path) as served:
        await routing_of(served, await post(served, event(1, "created")))
    async with serve(path) as served:
        record = await routing_of(served, await post(served, event(2, updated={"similar": 2})))
        assert record["routes"][0]["notify_on"]["changed"] is False
        set_alert(sekoia, urgency__display="Critical", urgency__current_value=90)
        record = await routing_of(served, await post(served, event(3, updated={"urgency": 90})))
        assert record["routes"][0]["notify_on"]["changes"] == [
            ["alert.urgency.display", "Major", "Critical"]
        ]
        await loopback.wait_for(2, timeout=15)
    assert changed_fact(loopback.requests[1].json()) == "urgency Major → Critical"


async def test_an_unreachable_api_notifies_and_keeps_the_known_values(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    sekoia: FakeSekoia,
) -> None:
    """A value that cannot be evaluated never counts as unchanged (fail open), and does not
    replace the one last notified."""
    notify_on = '{key: "{{ attributes.uuid }}", changes: [alert.status.name]}'
    path = write_config(config(queue_backend, sekoia.url, loopback.url, notify_on))
    async with serve(path) as served:
        await routing_of(served, await post(served, event(1, "created")))
        sekoia.refuse["alert"] = 404
        record = await routing_of(served, await post(served, event(2)))
        assert record["routes"][0]["notify_on"]["changed"] is True
        assert record["routes"][0]["notify_on"]["values"] == {"alert.status.name": None}
        sekoia.refuse.clear()
        record = await routing_of(served, await post(served, event(3)))
        assert record["routes"][0]["notify_on"]["changed"] is False  # still Pending
        await loopback.wait_for(2, timeout=15)
        await asyncio.sleep(0.3)
    assert len(loopback.requests) == 2


def test_expressions_name_the_value_a_reader_knows() -> None:
    assert change_label("alert.status.name") == "status"
    assert change_label("alert.urgency.display") == "urgency"
    assert change_label("alert.urgency.current_value") == "urgency"
    assert change_label("event.action") == "action"
    assert change_label("alert.alert_type.category") == "alert type category"


@pytest.mark.parametrize(
    ("notify_on", "column", "message"),
    [
        ('{key: " ", changes: [alert.status.name]}', 22, "the key must not be empty"),
        ('{key: "{{ alert.uuid }}", changes: []}', 51, "at least 1 item"),
        ('{key: "{{ alert.uuid", changes: [a]}', 22, "notify_on.key: does not compile"),
        ('{key: "k", changes: [a, "b +"]}', 40, "notify_on.changes.1: does not compile"),
        ('{key: "k", changes: [a], retention: soon}', 52, "expected a duration"),
        ('{key: "k", changes: [a], retention: 0}', 52, "greater than 0"),
    ],
)
def test_a_bad_notify_on_is_a_located_config_error(
    notify_on: str, column: int, message: str
) -> None:
    text = config(
        Backend("sqlite", QueueConfig()),
        "http://127.0.0.1:1",
        "http://127.0.0.1:1",
        notify_on,
    )
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "bad.yaml")
    shown = str(caught.value)
    assert shown.startswith(f"bad.yaml:16:{column}: routes."), shown  # the notify_on line
    assert message in shown, shown


async def test_the_dry_run_says_what_notify_on_would_decide_against_the_stored_state(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    sekoia: FakeSekoia,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write_config(config(queue_backend, sekoia.url, loopback.url))
    update = tmp_path / "update.json"
    update.write_text(json.dumps(event(2, updated={"similar": 2})))
    async with serve(path) as served:
        await routing_of(served, await post(served, event(1, "created")))
    dry_run = ["route", "-c", str(path), str(update), "--enrich"]
    assert await asyncio.to_thread(main, dry_run) == 0
    out = capsys.readouterr().out
    assert (
        f"notify_on: key {ALERT_UUID}: no listed value changed since the last notification "
        "(alert.status.name=Pending, alert.urgency.display=Major): no message"
    ) in out
    assert "(not sent now: notify_on: no listed value changed)" in out

    set_alert(sekoia, status__name="Closed")
    assert await asyncio.to_thread(main, [*dry_run, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    [entry] = [r for r in report["routes"] if r["name"] == "alerts"]
    assert entry["notify_on"]["changes"] == [["alert.status.name", "Pending", "Closed"]]
    assert "withheld" not in report["deliveries"][0]
    assert len(loopback.requests) == 1  # the dry runs sent nothing


async def test_the_dry_run_says_when_it_cannot_read_the_stored_state(
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    sekoia: FakeSekoia,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    missing = Backend("sqlite", QueueConfig(path=str(tmp_path / "nowhere" / "q.db")))
    path = write_config(config(missing, sekoia.url, loopback.url))
    created = tmp_path / "created.json"
    created.write_text(json.dumps(event(1, "created")))
    assert await asyncio.to_thread(main, ["route", "-c", str(path), str(created), "--enrich"]) == 0
    out = capsys.readouterr().out
    assert "could not read the stored notify_on/throttle state" in out
    assert "MATCH alerts" in out


async def test_trace_says_why_no_message_went_out(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    sekoia: FakeSekoia,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write_config(config(queue_backend, sekoia.url, loopback.url))
    async with serve(path) as served:
        await routing_of(served, await post(served, event(1, "created")))
        unchanged = await post(served, event(2, updated={"similar": 2}))
        await routing_of(served, unchanged)
    assert await asyncio.to_thread(main, ["trace", "-c", str(path), unchanged]) == 0
    out = capsys.readouterr().out
    assert "route      alerts: matched" in out
    assert f"notify_on: key {ALERT_UUID}: no listed value changed" in out
    assert "delivery " not in out
