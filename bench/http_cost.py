"""The HTTP layer's own cost: ``GET /healthz`` over keep-alive connections, nothing else.

Ingest numbers (``bench/run.py``) are dominated by the queue's commit; this measures what the
HTTP protocol (parser, limits, ASGI) costs per request, to compare protocol implementations.
Starts a fresh ``notirouter serve`` (loopback only), drives ``--connections`` keep-alive raw
sockets for ``--seconds`` and prints requests/s and the server's CPU microseconds per request.

    .venv/bin/python bench/http_cost.py
    .venv/bin/python bench/http_cost.py --connections 64 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import tempfile
import time
from pathlib import Path

from harness import Notirouter, ServeSettings, cpu_seconds, write_config

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"
ANSWER_END = b'{"status":"ok"}'


async def keep_alive_client(port: int, until: float) -> int:
    """Requests answered on one connection until ``until`` (monotonic)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answered = 0
    while time.monotonic() < until:
        writer.write(REQUEST)
        await reader.readuntil(ANSWER_END)
        answered += 1
    writer.close()
    return answered


async def measure(server: Notirouter, connections: int, seconds: float) -> dict[str, float]:
    """Requests/s and serve CPU per request over the run."""
    await asyncio.sleep(0.5)  # let start-up work settle
    cpu_before = cpu_seconds(server.pid)
    started = time.monotonic()
    until = started + seconds
    counts = await asyncio.gather(
        *(keep_alive_client(server.port, until) for _ in range(connections))
    )
    elapsed = time.monotonic() - started
    cpu_after = cpu_seconds(server.pid)
    total = sum(counts)
    cpu_us = None
    if cpu_before is not None and cpu_after is not None and total:
        cpu_us = round((cpu_after - cpu_before) * 1e6 / total, 1)
    return {"requests_per_s": round(total / elapsed), "serve_cpu_us_per_request": cpu_us}


def main() -> None:
    """Parse the command line, run once, print JSON."""
    parser = argparse.ArgumentParser(prog="bench/http_cost.py", description=__doc__)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="notirouter-http-cost-"))
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
        result = asyncio.run(measure(server, args.connections, args.seconds))
    finally:
        server.close()
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps({"connections": args.connections, **result}))


if __name__ == "__main__":
    main()
