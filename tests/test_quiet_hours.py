"""Time windows through the real runtime on both backends: held outside, released as one
digest when the window opens, a bypassing alert at once; every decision recorded."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from notirouter.cli import main
from notirouter.config.models import QueueConfig
from tests.backends import Backend
from tests.conftest import TOKEN
from tests.loopback import LoopbackServer
from tests.serving import serve

PARIS = ZoneInfo("Europe/Paris")
OPENS_IN = 4.0  # seconds: time to route the held and the bypassing alerts first


def opening_soon() -> tuple[float, str]:
    """An instant a few seconds ahead (whole second) and a Paris range starting then."""
    opens = float(int(time.time() + OPENS_IN) + 1)
    local = datetime.fromtimestamp(opens, PARIS)
    later = local + timedelta(hours=1)
    end = f"{later:%H:%M:%S}" if later.date() == local.date() else "24:00:00"
    return opens, f"{local:%H:%M:%S}-{end}"


def config(backend: Backend, url: str, times: str, key: str = "active") -> str:
    return f"""
hooks:
  - {{name: sekoia, token: {TOKEN}}}
queue: {backend.yaml()}
delivery: {{backoff_initial: 50ms, backoff_max: 200ms, lease: 30s}}
server: {{access_log: false}}
sinks:
  a: {{type: webhook, url: "{url}"}}
time_windows:
  soon: [{{times: ["{times}"], timezone: Europe/Paris}}]
routes:
  - name: office
    match: {{type: alert}}
    sinks: [a]
    {key}: soon
    bypass: "attributes.urgency >= 80"
"""


def alert(n: int, urgency: int) -> dict[str, Any]:
    return {
        "type": "alert",
        "action": "created",
        "attributes": {"uuid": f"uuid-{n}", "short_id": f"AL{n}", "urgency": urgency},
        "metadata": {"uuid": f"event-{n}"},
    }


async def post(base: str, body: dict[str, Any]) -> str:
    async with (
        aiohttp.ClientSession() as client,
        client.post(f"{base}/hooks/{TOKEN}", json=body) as response,
    ):
        assert response.status == 202
        return str((await response.json())["id"])


async def routing_of(path: Path, event_id: str, capsys: pytest.CaptureFixture[str]) -> Any:
    for _ in range(200):
        capsys.readouterr()
        code = await asyncio.to_thread(main, ["trace", event_id, "--json", "-c", str(path)])
        out = capsys.readouterr().out
        if code == 0 and json.loads(out)["routing"] is not None:
            return json.loads(out)["routing"]["routes"][0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"{event_id} not routed")


async def test_held_until_the_window_opens_then_one_digest_and_a_bypass_goes_at_once(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    opens, times = opening_soon()
    path = write_config(config(queue_backend, loopback.url, times))
    arrivals: list[float] = []
    async with serve(path) as served:
        held = [await post(served.url, alert(n, urgency=20)) for n in (1, 2)]
        await post(served.url, alert(3, urgency=90))
        [urgent] = await loopback.wait_for(1)
        arrivals.append(time.time())
        record = await routing_of(path, held[0], capsys)
        capsys.readouterr()
        assert await asyncio.to_thread(main, ["trace", held[0], "-c", str(path)]) == 0
        told = capsys.readouterr().out
        metrics = served.runtime.metrics.render().decode()
        await loopback.wait_for(2, timeout=OPENS_IN + 10)
        arrivals.append(time.time())
        await asyncio.sleep(0.5)  # nothing else would arrive
    assert arrivals[0] < opens  # the bypassing alert did not wait for the window
    assert urgent.json()["title"] == "New alert: AL3"
    assert arrivals[1] >= opens
    assert len(loopback.requests) == 2
    digest = loopback.requests[1].json()
    assert digest["digest"]["count"] == 2
    assert sorted(digest["digest"]["event_ids"]) == sorted(held)
    assert "    window soon: held: not inside window soon until " in told
    assert 'notirouter_window_held_total{route="office"} 2.0' in metrics
    assert record["window"]["name"] == "soon"
    assert record["window"]["held"] is True
    assert record["window"]["until"] == datetime.fromtimestamp(opens, UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


async def test_inside_the_window_a_route_sends_at_once_and_records_why(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Quiet hours: active outside a window that opens in a few seconds, so active right now.
    _, times = opening_soon()
    path = write_config(config(queue_backend, loopback.url, times, key="active_outside"))
    async with serve(path) as served:
        event_id = await post(served.url, alert(1, urgency=10))
        [message] = await loopback.wait_for(1)
        record = await routing_of(path, event_id, capsys)
    assert message.json()["title"] == "New alert: AL1"
    assert record["window"] == {
        "name": "soon",
        "held": False,
        "reason": "active: outside window soon",
    }


def test_the_dry_run_says_a_message_would_be_held_and_until_when(
    write_config: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backend = Backend("sqlite", QueueConfig(path=str(tmp_path / "q.db")))
    opens, times = opening_soon()
    path = str(write_config(config(backend, "http://127.0.0.1:9", times)))
    event = tmp_path / "event.json"
    until = datetime.fromtimestamp(opens, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    event.write_text(json.dumps(alert(1, urgency=10)))
    assert main(["route", str(event), "-c", path]) == 0
    assert f"window soon: held: not inside window soon until {until}" in capsys.readouterr().out
    event.write_text(json.dumps(alert(1, urgency=95)))
    assert main(["route", str(event), "--json", "-c", path]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["routes"][0]["window"]["reason"] == "bypass is true: attributes.urgency >= 80"
