"""The heartbeat pings a dead-man's-switch URL at its interval while notirouter is ready, stops
while the queue cannot store events, and resumes after: real ``serve``, a loopback monitor."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest

from notirouter.cli import main
from notirouter.config.models import QueueConfig
from tests.backends import Backend, through_port
from tests.conftest import TOKEN
from tests.loopback import LoopbackServer, Recorded
from tests.serving import Served, serve
from tests.tcp_proxy import TcpProxy
from tests.test_queue_errors import fill, small_disk

__all__ = ["small_disk"]  # the fixture, used below
EVERY = 0.2
CHECK_PATH = "/ping/0f3c9a4e-7d1b-4c2a-9e55-b1d2c3a4f5e6"


def config(queue: str, monitor: LoopbackServer, method: str = "GET") -> str:
    return f"""
hooks:
  - {{name: sekoia, token: {TOKEN}}}
queue: {queue}
heartbeat: {{url: "{monitor.url}{CHECK_PATH}", every: {EVERY * 1000:g}ms, method: {method}}}
sinks:
  console: {{type: log}}
routes:
  - {{name: all, sinks: [console]}}
"""


async def post(served: Served, n: int) -> int:
    body = {"type": "alert", "action": "created", "metadata": {"uuid": f"m{n}"}}
    async with (
        aiohttp.ClientSession() as client,
        client.post(f"{served.url}/hooks/{TOKEN}", json=body) as response,
    ):
        return response.status


async def ready(served: Served) -> int:
    async with aiohttp.ClientSession() as client, client.get(f"{served.url}/readyz") as response:
        return response.status


async def silent_while(monitor: LoopbackServer, seconds: float) -> list[Recorded]:
    """The pings that arrive during ``seconds`` after one that was already on its way."""
    await asyncio.sleep(EVERY)  # a ping decided just before the outage may still land
    before = len(monitor.requests)
    await asyncio.sleep(seconds)
    return monitor.requests[before:]


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_the_heartbeat_pings_at_its_interval(
    method: str,
    write_config: Callable[..., Path],
    tmp_path: Path,
    loopback: LoopbackServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = write_config(config(f'{{path: "{tmp_path / "q.db"}"}}', loopback, method))
    async with serve(path):
        pings = await loopback.wait_for(4)
    assert {(p.method, p.path) for p in pings} == {(method, CHECK_PATH)}
    gaps = [b.at - a.at for a, b in itertools.pairwise(pings)]
    assert min(gaps) >= EVERY * 0.9  # at the interval, not in a burst
    assert CHECK_PATH not in caplog.text  # the URL identifies the check: a secret


async def test_the_heartbeat_stops_while_the_disk_is_full_and_resumes(
    small_disk: Path,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = write_config(config(f'{{path: "{small_disk / "q.db"}"}}', loopback))
    async with serve(path) as served:
        await loopback.wait_for(2)
        filler = fill(small_disk)
        assert await post(served, 1) == 503  # the queue cannot store: not ready
        assert await ready(served) == 503
        assert await silent_while(loopback, 5 * EVERY) == []
        filler.unlink()
        assert await ready(served) == 200
        count = len(loopback.requests)
        await loopback.wait_for(count + 2)
    withheld = [r for r in caplog.records if "heartbeat withheld" in r.getMessage()]
    assert len(withheld) == 1, caplog.text  # said once, not once per interval
    assert withheld[0].levelno == logging.WARNING
    assert any("heartbeat resumes" in r.getMessage() for r in caplog.records)


async def test_the_heartbeat_stops_while_postgres_is_cut_off_and_resumes(
    postgres_backend: Backend, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    settings: QueueConfig = postgres_backend.settings
    assert settings.url is not None
    real = urlsplit(settings.url.get_secret_value())
    proxy = TcpProxy(real.hostname or "127.0.0.1", real.port or 5432)
    await proxy.start()
    url = through_port(settings.url.get_secret_value(), proxy.port)
    path = write_config(config(f'{{backend: postgres, url: "{url}"}}', loopback))
    try:
        async with serve(path) as served:
            await loopback.wait_for(2)
            await proxy.cut()
            assert await ready(served) == 503
            assert await silent_while(loopback, 5 * EVERY) == []
            await proxy.restore()
            count = len(loopback.requests)
            await loopback.wait_for(count + 2, timeout=15)
    finally:
        await proxy.stop()


async def test_a_monitor_that_is_down_costs_one_warning(
    write_config: Callable[..., Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gone = LoopbackServer()
    await gone.start()
    await gone.stop()  # nothing listens on its port any more
    path = write_config(config(f'{{path: "{tmp_path / "q.db"}"}}', gone))
    async with serve(path) as served:
        await asyncio.sleep(5 * EVERY)
        assert await ready(served) == 200  # the monitor's trouble is not ours
    failed = [r for r in caplog.records if "heartbeat ping failed" in r.getMessage()]
    assert len(failed) == 1, caplog.text
    assert CHECK_PATH not in caplog.text


def test_a_wrong_heartbeat_url_is_a_config_error_that_does_not_show_it(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(f"""
hooks:
  - {{name: sekoia, token: {TOKEN}}}
heartbeat: {{url: "hc-ping.com{CHECK_PATH}", every: 5m}}
""")
    assert main(["check", "-c", str(path)]) == 1
    out, err = capsys.readouterr()
    assert f"{path}:3:" in err and "heartbeat.url" in err and "http" in err, err
    assert CHECK_PATH.split("/")[-1] not in out + err
