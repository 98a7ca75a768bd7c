"""What only a shared queue must do: several receivers and workers on one PostgreSQL database.

Each ``serve`` here is a separate runtime with its own connection pool, listener and sink
gates, as a separate process would have; only the database is shared.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from notirouter.config.models import QueueConfig
from tests.backends import Backend, through_port
from tests.conftest import TOKEN
from tests.loopback import LoopbackServer, Reply
from tests.serving import Served, serve
from tests.tcp_proxy import TcpProxy


def config(backend: Backend, sink: str, delivery: str = "") -> str:
    return f"""
hooks:
  - {{name: sekoia, token: {TOKEN}}}
queue: {backend.yaml()}
delivery: {{backoff_initial: 50ms, backoff_max: 200ms, lease: 30s {delivery}}}
sinks:
  a: {sink}
routes:
  - {{name: r, sinks: [a]}}
"""


def event(n: int) -> dict[str, object]:
    return {"type": "alert", "action": "created", "metadata": {"uuid": f"m{n}"}, "attributes": {}}


async def post(served: Served, body: dict[str, object]) -> tuple[int, dict[str, str], object]:
    async with (
        aiohttp.ClientSession() as client,
        client.post(f"{served.url}/hooks/{TOKEN}", json=body) as response,
    ):
        return response.status, dict(response.headers), await response.json()


@contextlib.asynccontextmanager
async def two_receivers(path: Path) -> AsyncIterator[tuple[Served, Served]]:
    async with serve(path) as first, serve(path) as second:
        yield first, second


async def test_the_same_event_posted_to_two_receivers_at_once_is_delivered_once(
    postgres_backend: Backend, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    path = write_config(config(postgres_backend, f'{{type: webhook, url: "{loopback.url}"}}'))
    async with two_receivers(path) as (first, second):
        answers = await asyncio.gather(
            *(post(receiver, event(n)) for n in range(20) for receiver in (first, second))
        )
        await loopback.wait_for(20)
        await asyncio.sleep(0.5)  # time for a duplicate delivery to show up, if any
    assert [status for status, _, _ in answers] == [202] * 40
    for n in range(20):
        one, other = answers[2 * n][2], answers[2 * n + 1][2]
        assert isinstance(one, dict) and isinstance(other, dict)
        assert one["id"] == other["id"]
        assert sorted([one["duplicate"], other["duplicate"]]) == [False, True]
    assert len(loopback.requests) == 20


async def test_a_rate_limit_holds_across_processes(
    postgres_backend: Backend, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    sink = f'{{type: webhook, url: "{loopback.url}", rate_limit: 4, concurrency: 4}}'
    path = write_config(config(postgres_backend, sink))
    async with two_receivers(path) as (first, second):
        await asyncio.gather(*(post((first, second)[n % 2], event(n)) for n in range(12)))
        requests = await loopback.wait_for(12, timeout=15)
    span = requests[-1].at - requests[0].at
    # 12 messages at 4/s with a burst of 1 take 2.75 s in total; with a bucket per process
    # (8/s between the two) they would take about 1.4 s.
    assert span >= 2.4, f"12 messages in {span:.2f}s: {11 / span:.1f}/s at the sink"


async def test_retry_after_pauses_the_sink_in_every_process(
    postgres_backend: Backend, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    loopback.reply(Reply(429, "slow down", {"Retry-After": "2"}), Reply(200, "ok"))
    sink = f'{{type: webhook, url: "{loopback.url}", concurrency: 1}}'
    path = write_config(config(postgres_backend, sink))
    async with two_receivers(path) as (first, second):
        assert (await post(first, event(0)))[0] == 202
        [refused] = await loopback.wait_for(1)
        await asyncio.sleep(0.3)  # the pause is recorded once the attempt is
        await asyncio.gather(*(post((first, second)[n % 2], event(n)) for n in range(1, 7)))
        _, *rest = await loopback.wait_for(7, timeout=15)
    # Neither process sends anything for that sink until the pause it was asked for is over.
    assert min(request.at - refused.at for request in rest) >= 1.9


async def test_a_lost_database_answers_503_and_the_workers_resume(
    postgres_backend: Backend, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    settings: QueueConfig = postgres_backend.settings
    assert settings.url is not None
    real = urlsplit(settings.url.get_secret_value())
    proxy = TcpProxy(real.hostname or "127.0.0.1", real.port or 5432)
    await proxy.start()
    behind = Backend(
        "postgres",
        settings.model_copy(
            update={
                "url": type(settings.url)(
                    through_port(str(settings.url.get_secret_value()), proxy.port)
                )
            }
        ),
    )
    path = write_config(config(behind, f'{{type: webhook, url: "{loopback.url}"}}'))
    try:
        async with serve(path) as served:
            assert (await post(served, event(1)))[0] == 202
            await loopback.wait_for(1)
            await proxy.cut()
            status, headers, answer = await post(served, event(2))
            assert (status, headers.get("Retry-After")) == (503, "5"), answer
            assert (await post(served, event(3)))[0] == 503  # the pool cannot reconnect either
            async with (
                aiohttp.ClientSession() as client,
                client.get(f"{served.url}/readyz") as response,
            ):
                assert response.status == 503
                ready = await response.json()
            assert ready["status"] == "queue unavailable"
            assert "PostgreSQL" in ready["reason"]
            await asyncio.sleep(1.5)  # the loops fail to claim meanwhile, and keep trying
            await proxy.restore()
            for n in (2, 3, 4):  # the sender retries what was refused
                assert (await post(served, event(n)))[0] == 202
            requests = await loopback.wait_for(4, timeout=15)
            await asyncio.sleep(0.3)
    finally:
        await proxy.stop()
    delivered = sorted(r.json()["event"]["metadata"]["uuid"] for r in requests)
    assert delivered == ["m1", "m2", "m3", "m4"]
