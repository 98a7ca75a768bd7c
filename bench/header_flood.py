"""Header flood: does the receiver stay small and fast while clients stream endless headers?

Starts a fresh ``notirouter serve`` (its own process, loopback only), measures ``/healthz``
latency at rest, then opens ``--connections`` raw sockets that each send a request line and
one header whose value never ends, reconnecting whenever the server closes one, until each has
sent ``--megabytes`` or ``--seconds`` have passed, while probing ``/healthz`` and sampling the
server's RSS. Prints one JSON object: RSS before and at its peak, ``/healthz`` latency at rest
and under flood, and what the flooding connections got back (status lines, or nothing).

    .venv/bin/python bench/header_flood.py                 # 2 connections, 200 MB each, <= 30 s
    .venv/bin/python bench/header_flood.py --connections 4 --megabytes 50
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import Notirouter, ServeSettings, write_config

CHUNK = b"a" * 65536
PROBE_INTERVAL = 0.1


def rss_mb(pid: int) -> float | None:
    """The resident set size of ``pid`` in MB (Linux), or ``None``."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


async def healthz_ms(port: int, timeout: float) -> float | None:
    """One ``GET /healthz`` on a fresh connection: milliseconds, or ``None`` on failure."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            await writer.drain()
            status = await reader.readline()
            await reader.read()
            writer.close()
    except (OSError, TimeoutError):
        return None
    if not status.startswith(b"HTTP/1.1 200"):
        return None
    return (time.perf_counter() - started) * 1000


async def flood_once(port: int, limit: int, deadline: float) -> tuple[int, bytes]:
    """One connection streaming one endless header until ``limit`` bytes, the deadline, or
    the server closes it; the bytes sent and the status line it answered (if any)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer = asyncio.create_task(reader.readline())
    writer.write(b"POST /hooks/flood HTTP/1.1\r\nHost: bench\r\nX-Flood: ")
    sent = 0
    try:
        while sent < limit and time.monotonic() < deadline and not answer.done():
            writer.write(CHUNK)
            sent += len(CHUNK)
            remaining = deadline - time.monotonic()
            await asyncio.wait_for(writer.drain(), timeout=max(0.01, remaining))
    except (OSError, TimeoutError):
        pass
    status = b""
    with contextlib.suppress(OSError, TimeoutError):
        status = await asyncio.wait_for(answer, timeout=2)
    answer.cancel()
    writer.close()
    return sent, status.strip()


async def flood(port: int, limit: int, deadline: float) -> dict[str, Any]:
    """Keep one flooding connection open (reconnecting when closed) until ``limit`` bytes in
    all, or the deadline."""
    sent = connections = 0
    answers: dict[str, int] = {}
    while sent < limit and time.monotonic() < deadline:
        try:
            more, status = await flood_once(port, limit - sent, deadline)
        except OSError:
            await asyncio.sleep(0.01)
            continue
        sent += more
        connections += 1
        key = status.decode("latin-1") or "(closed without an answer)"
        answers[key] = answers.get(key, 0) + 1
    return {"sent_mb": round(sent / 1_048_576, 1), "connections": connections, "answers": answers}


def summary(latencies: list[float | None]) -> dict[str, Any]:
    """p50 / max of the probes that succeeded, and how many failed."""
    ok = sorted(v for v in latencies if v is not None)
    return {
        "probes": len(latencies),
        "failed": len(latencies) - len(ok),
        "p50_ms": round(statistics.median(ok), 1) if ok else None,
        "max_ms": round(ok[-1], 1) if ok else None,
    }


async def measure(server: Notirouter, args: argparse.Namespace) -> dict[str, Any]:
    """Rest, then flood; the numbers."""
    rest = [await healthz_ms(server.port, args.probe_timeout) for _ in range(20)]
    rss_before = rss_mb(server.pid)
    deadline = time.monotonic() + args.seconds
    floods = [
        asyncio.create_task(flood(server.port, args.megabytes * 1_048_576, deadline))
        for _ in range(args.connections)
    ]
    under: list[float | None] = []
    peak = rss_before or 0.0
    while not all(task.done() for task in floods):
        under.append(await healthz_ms(server.port, args.probe_timeout))
        peak = max(peak, rss_mb(server.pid) or 0.0)
        await asyncio.sleep(PROBE_INTERVAL)
    return {
        "connections": args.connections,
        "megabytes_per_connection": args.megabytes,
        "rss_mb_before": rss_before,
        "rss_mb_peak": peak,
        "rss_mb_after": rss_mb(server.pid),
        "healthz_at_rest": summary(rest),
        "healthz_under_flood": summary(under),
        "floods": [task.result() for task in floods],
    }


def main() -> None:
    """Parse the command line, run once, print JSON."""
    parser = argparse.ArgumentParser(prog="bench/header_flood.py", description=__doc__)
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--megabytes", type=int, default=200, help="per connection [200]")
    parser.add_argument("--seconds", type=float, default=30.0, help="flood at most this long")
    parser.add_argument("--probe-timeout", type=float, default=15.0)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="notirouter-flood-"))
    settings = ServeSettings(
        workdir=workdir,
        sink_url="http://127.0.0.1:9/unused",
        api_url="http://127.0.0.1:9",
        api_key="unused",
        token=secrets.token_hex(16),
        enrich=False,
        access_log=False,
    )
    server = Notirouter(write_config(settings), log_level="INFO")
    try:
        result = asyncio.run(measure(server, args))
    finally:
        result_code = server.close()
        shutil.rmtree(workdir, ignore_errors=True)
    result["serve_exit_code"] = result_code
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
