"""Delivery through the real runtime, on every queue backend: retries, Retry-After, dead
letters, isolation, limits."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from notirouter.cli import main
from notirouter.queue.postgres.queue import PostgresQueue
from notirouter.queue.sqlite.backend import SqliteBackend
from tests.backends import Backend
from tests.loopback import LoopbackServer, Reply
from tests.serving import Served, config, event, post_events, serve


async def test_transient_failures_are_retried_until_delivered_once(
    queue_backend: Backend, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    loopback.reply(Reply(500, "boom"), Reply(503), Reply(200, "ok"))
    path = write_config(
        config(
            queue_backend,
            f'  a: {{type: webhook, url: "{loopback.url}"}}',
            "  - {name: r, sinks: [a]}",
        )
    )
    async with serve(path) as served:
        await post_events(served, [event(1)])
        await loopback.wait_for(3)
        await asyncio.sleep(0.3)
    assert len(loopback.requests) == 3
    assert len({r.body for r in loopback.requests}) == 1


async def test_retry_after_is_honoured(
    queue_backend: Backend, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    loopback.reply(Reply(429, "slow down", {"Retry-After": "1"}), Reply(200, "ok"))
    path = write_config(
        config(
            queue_backend,
            f'  a: {{type: webhook, url: "{loopback.url}"}}',
            "  - {name: r, sinks: [a]}",
        )
    )
    async with serve(path) as served:
        await post_events(served, [event(1)])
        first, second = await loopback.wait_for(2)
    assert second.at - first.at >= 0.95


async def test_permanent_failure_becomes_a_dead_letter_and_replays(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    loopback.reply(Reply(404, "no such hook"))
    path = write_config(
        config(
            queue_backend,
            f'  a: {{type: webhook, url: "{loopback.url}"}}',
            "  - {name: r, sinks: [a]}",
        )
    )
    async with serve(path) as served:
        await post_events(served, [event(1)])
        await loopback.wait_for(1)
        await asyncio.sleep(0.2)
        assert await asyncio.to_thread(main, ["dead", "list", "-c", str(path), "--json"]) == 0
        [dead] = json.loads(capsys.readouterr().out)
        assert (dead["sink"], dead["route"], dead["attempts"]) == ("a", "r", 1)
        assert dead["error"] == "HTTP 404: no such hook"
        show = ["dead", "show", "-c", str(path), str(dead["id"])]
        assert await asyncio.to_thread(main, show) == 0
        shown = json.loads(capsys.readouterr().out)
        assert (shown["kind"], shown["sink"], shown["error"]) == ("delivery", "a", dead["error"])
        assert shown["message"]["route"] == "r"
        assert shown["event"]["metadata"]["uuid"] == "m1"
        loopback.reply(Reply(200, "ok"))
        assert (
            await asyncio.to_thread(main, ["dead", "replay", "-c", str(path), str(dead["id"])]) == 0
        )
        await loopback.wait_for(2, timeout=10)
        for _ in range(100):
            if await served.runtime.queue.counts() == {"events_routed": 1, "deliveries_done": 1}:
                break
            await asyncio.sleep(0.05)
        assert await served.runtime.queue.counts() == {"events_routed": 1, "deliveries_done": 1}
    assert "1 dead letter queued again" in capsys.readouterr().out


async def test_jobs_past_max_age_become_dead_letters(
    queue_backend: Backend, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    loopback.reply(Reply(500, "still broken"))
    path = write_config(
        config(
            queue_backend,
            f'  a: {{type: webhook, url: "{loopback.url}"}}',
            "  - {name: r, sinks: [a]}",
            ", max_age: 300ms",
        )
    )
    async with serve(path) as served:
        await post_events(served, [event(1)])
        await asyncio.sleep(1.0)
        letters = await served.runtime.queue.dead_letters().deliveries()
    assert len(letters) == 1
    assert letters[0].last_error.startswith("gave up after")
    assert letters[0].last_error.endswith("HTTP 500: still broken")


async def test_a_failing_sink_does_not_delay_another(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    second_loopback: LoopbackServer,
) -> None:
    loopback.reply(Reply(500, "down", delay=0.5))  # slow and failing
    sinks = (
        f'  bad: {{type: webhook, url: "{loopback.url}", concurrency: 1}}\n'
        f'  good: {{type: webhook, url: "{second_loopback.url}"}}'
    )
    path = write_config(config(queue_backend, sinks, "  - {name: r, sinks: [bad, good]}"))
    async with serve(path) as served:
        await post_events(served, [event(n) for n in range(20)])
        await second_loopback.wait_for(20, timeout=3)
        assert len(loopback.requests) < 20  # the bad sink is still working through its retries


async def test_rate_limit_spaces_deliveries(
    queue_backend: Backend, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    sinks = f'  a: {{type: webhook, url: "{loopback.url}", rate_limit: 10}}'
    path = write_config(config(queue_backend, sinks, "  - {name: r, sinks: [a]}"))
    async with serve(path) as served:
        await post_events(served, [event(n) for n in range(6)])
        requests = await loopback.wait_for(6)
    assert requests[-1].at - requests[0].at >= 0.45  # 6 messages at 10/s, burst 1


async def test_retry_after_pauses_the_whole_sink(
    queue_backend: Backend, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    loopback.reply(Reply(429, "rate limited", {"Retry-After": "1"}), Reply(200, "ok"))
    sinks = f'  a: {{type: webhook, url: "{loopback.url}", concurrency: 1}}'
    path = write_config(config(queue_backend, sinks, "  - {name: r, sinks: [a]}"))
    async with serve(path) as served:
        await post_events(served, [event(n) for n in range(3)])
        first, *rest = await loopback.wait_for(4)
    # Not only the refused message: the other messages for that sink wait as well.
    assert all(request.at - first.at >= 0.95 for request in rest)


async def test_concurrency_bounds_attempts_in_flight(
    queue_backend: Backend, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    loopback.reply(Reply(200, "ok", delay=0.2))
    sinks = f'  a: {{type: webhook, url: "{loopback.url}", concurrency: 2}}'
    path = write_config(config(queue_backend, sinks, "  - {name: r, sinks: [a]}"))
    async with serve(path) as served:
        await post_events(served, [event(n) for n in range(12)])
        await loopback.wait_for(12)
    assert loopback.max_in_flight == 2


async def test_rate_limited_jobs_never_outlive_their_lease(
    queue_backend: Backend, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    # 8 jobs at 4/s take 2 s, twice the lease: a job must not wait for its token while leased.
    sinks = (
        f'  a: {{type: webhook, url: "{loopback.url}", rate_limit: 4, concurrency: 8,'
        " timeout: 0.4}"
    )
    routes = "  - {name: r, sinks: [a]}"
    path = write_config(config(queue_backend, sinks, routes).replace("lease: 30s", "lease: 1s"))
    async with serve(path) as served:
        await post_events(served, [event(n) for n in range(8)])
        await loopback.wait_for(8)
        await asyncio.sleep(1.5)
    delivered = sorted(r.json()["event"]["attributes"]["uuid"] for r in loopback.requests)
    assert delivered == sorted(f"u{n}" for n in range(8))  # each once


async def test_an_excessive_retry_after_is_capped(
    queue_backend: Backend, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    loopback.reply(Reply(429, "come back tomorrow", {"Retry-After": "86400"}))
    path = write_config(
        config(
            queue_backend,
            f'  a: {{type: webhook, url: "{loopback.url}"}}',
            "  - {name: r, sinks: [a]}",
        )
    )
    async with serve(path) as served:
        await post_events(served, [event(1)])
        await loopback.wait_for(1)
        await asyncio.sleep(0.3)
        due = await served.runtime.queue.next_delivery_due("a")
        assert await served.runtime.queue.dead_letters().deliveries() == []  # not given up at once
    assert due is not None
    assert 800 < due - time.time() <= 901  # 15 minutes, not a day


async def claims_made(served: Served) -> int:
    """How many claims took the delivered jobs: each claim leases its jobs under one token."""
    query = "SELECT COUNT(DISTINCT lease) FROM deliveries WHERE state = 'done'"
    queue = served.runtime.queue
    if isinstance(queue, SqliteBackend):
        row = await queue.read(lambda c: c.execute(query).fetchone())
        return int(row[0])
    assert isinstance(queue, PostgresQueue)
    return int(await queue.pool.fetchval(query))


async def test_a_generous_rate_limit_claims_many_jobs_at_once(
    queue_backend: Backend, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    # A Retry-After pause holds the sink while 40 jobs fall due (3 s: posting them on a busy
    # machine must not outlast it); then the dispatcher claims as many as its 32 slots and the
    # bucket allow: 100,000/s books tokens for all of them.
    loopback.reply(Reply(429, "wait", {"Retry-After": "3"}), Reply(200, "ok"))
    sinks = f'  a: {{type: webhook, url: "{loopback.url}", rate_limit: 100000, concurrency: 32}}'
    path = write_config(config(queue_backend, sinks, "  - {name: r, sinks: [a]}"))
    async with serve(path) as served:
        await post_events(served, [event(0)])
        await loopback.wait_for(1)
        await post_events(served, [event(n) for n in range(1, 41)])
        await loopback.wait_for(42)
        await asyncio.sleep(0.3)  # the outcomes are recorded after the answers
        claims = await claims_made(served)
    delivered = sorted(r.json()["event"]["attributes"]["uuid"] for r in loopback.requests[1:])
    assert delivered == sorted(f"u{n}" for n in range(41))  # each once, the refused one again
    assert claims <= 6, f"41 jobs took {claims} claims"


async def test_a_slow_rate_limit_still_claims_one_job_per_token(
    queue_backend: Backend, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    # 5/s books no token ahead (0.1 s brings half of one): each job is claimed when its token
    # is there, so none waits for the limit under its lease.
    loopback.reply(Reply(429, "wait", {"Retry-After": "1"}), Reply(200, "ok"))
    sinks = f'  a: {{type: webhook, url: "{loopback.url}", rate_limit: 5, concurrency: 8}}'
    path = write_config(config(queue_backend, sinks, "  - {name: r, sinks: [a]}"))
    async with serve(path) as served:
        await post_events(served, [event(0)])
        await loopback.wait_for(1)
        await post_events(served, [event(n) for n in range(1, 6)])
        requests = await loopback.wait_for(7)
        await asyncio.sleep(0.3)
        claims = await claims_made(served)
    assert claims == 6
    assert requests[-1].at - requests[2].at >= 0.75  # 5 sends after the first at 5/s, burst 1
