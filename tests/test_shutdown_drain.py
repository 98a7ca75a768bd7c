"""SIGTERM and SIGINT drain: deliveries in flight finish once, are recorded, and serve exits 0.

A real ``notirouter serve`` process, a real loopback sink that answers slowly, real signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import TOKEN
from tests.loopback import LoopbackServer, Reply
from tests.serve_process import free_port, start_serve, wait_exit

SINK_DELAY = 3.0
LEASE = 8.0


def event(n: int) -> dict[str, object]:
    return {
        "type": "alert",
        "action": "created",
        "attributes": {"n": n},
        "metadata": {"uuid": f"e{n}"},
    }


def drain_config(
    write_config: Callable[..., Path], db: Path, sink_url: str, **server: object
) -> Path:
    server = {"shutdown_grace": 10, **server}
    settings = ", ".join(f"{key}: {value}" for key, value in server.items())
    return write_config(
        f"""
        server: {{{settings}}}
        hooks:
          - {{name: sekoia, token: {TOKEN}}}
        queue: {{path: "{db}"}}
        delivery: {{lease: {LEASE}s, backoff_initial: 100ms, backoff_max: 200ms}}
        sinks:
          forward: {{type: webhook, url: "{sink_url}", concurrency: 8, timeout: 3.5}}
        routes:
          - {{name: all, sinks: [forward]}}
        """
    )


async def queue_gauges(client: aiohttp.ClientSession, base: str) -> dict[str, float]:
    async with client.get(f"{base}/metrics") as response:
        text = await response.text()
    gauges = {}
    for line in text.splitlines():
        if line.startswith("notirouter_queue_jobs{"):
            labels, value = line.rsplit(" ", 1)
            gauges[labels.removeprefix("notirouter_queue_jobs")] = float(value)
    return gauges


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
async def test_signal_drains_deliveries_in_flight_exactly_once_and_exits_0(
    tmp_path: Path,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    stop_signal: signal.Signals,
) -> None:
    loopback.reply(Reply(200, "ok", delay=SINK_DELAY))
    config = drain_config(write_config, tmp_path / "q.db", f"{loopback.url}/sink")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    process = await start_serve(config, port, log)
    try:
        async with aiohttp.ClientSession() as client:
            for n in range(4):
                async with client.post(f"{base}/hooks/{TOKEN}", json=event(n)) as response:
                    assert response.status == 202
            await loopback.wait_for(4)  # all four attempts are in flight at the sink now
            assert loopback.in_flight == 4
            process.send_signal(stop_signal)

            # While the attempts finish: not ready, and new events are refused, not lost.
            for _ in range(100):
                async with client.get(f"{base}/readyz") as response:
                    if response.status == 503:
                        assert (await response.json())["status"] == "draining"
                        break
                await asyncio.sleep(0.02)
            else:
                pytest.fail("/readyz never turned 503 during the drain")
            async with client.post(f"{base}/hooks/{TOKEN}", json=event(99)) as response:
                assert response.status == 503
                assert response.headers["Retry-After"] == "5"

            assert await wait_exit(process, timeout=SINK_DELAY + 15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert len(loopback.requests) == 4

    # Restarted on the same queue, past the lease: every outcome was recorded, nothing is sent
    # again, and the refused event was never stored.
    loopback.reply(Reply(200, "ok"))
    process = await start_serve(config, port, log)
    try:
        await asyncio.sleep(LEASE + 1.5)
        async with aiohttp.ClientSession() as client:
            gauges = await queue_gauges(client, base)
        process.send_signal(signal.SIGTERM)
        assert await wait_exit(process, timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert sorted(r.json()["event"]["attributes"]["n"] for r in loopback.requests) == [0, 1, 2, 3]
    assert gauges['{kind="deliveries",state="done"}'] == 4
    assert gauges['{kind="deliveries",state="pending"}'] == 0
    assert gauges['{kind="events",state="routed"}'] == 4
    assert gauges['{kind="events",state="pending"}'] == 0
    text = log.read_text()
    assert f"{stop_signal.name}: draining" in text
    assert text.count("notirouter stopped: queue closed") == 2
    assert "Traceback" not in text


async def test_sigterm_with_a_body_trickling_in_exits_promptly(
    tmp_path: Path, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    # Long body deadline: only the shutdown can end this request.
    config = drain_config(write_config, tmp_path / "q.db", f"{loopback.url}/sink", body_timeout=600)
    port = free_port()
    process = await start_serve(config, port, tmp_path / "serve.log")
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /hooks/" + TOKEN.encode() + b" HTTP/1.1\r\nHost: t\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
        )
        await writer.drain()
        await asyncio.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        answer = b""
        with contextlib.suppress(OSError, TimeoutError):
            answer = await asyncio.wait_for(reader.read(), timeout=10)
        writer.close()
        assert await wait_exit(process, timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert answer.startswith(b"HTTP/1.1 503 "), answer[:200]
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"] == "shutting down, retry later"
