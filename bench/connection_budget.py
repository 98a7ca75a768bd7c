"""What a per-sink connection budget costs: POSTs/s through the shared session, with and without.

``notirouter.api.http.HttpClient.with_budget`` puts one semaphore per sink in front of the shared
aiohttp session. This sends the same small JSON POSTs to the bench's loopback sink (a separate
process) at a few concurrencies, three ways taking turns, and prints the best requests per
second of a few rounds:

- ``session``: a bare aiohttp session with a 256-connection pool (the client before budgets);
- ``budget``: ``HttpClient().with_budget(concurrency)`` (what every sink uses now);
- ``per-sink-pool``: a session and connector of its own, limited to the concurrency (the
  alternative: a pool per sink).

Run: ``.venv/bin/python bench/connection_budget.py [--requests 5000] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import LoopbackPeers
from notirouter.api.http import HttpClient, HttpRequest

BODY = b'{"text":"an alert","event":{"metadata":{"uuid":"x"}}}'
HEADERS = {"Content-Type": "application/json"}


async def _run(send: Callable[[], Awaitable[None]], requests: int, concurrency: int) -> float:
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await send()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return requests / (time.perf_counter() - started)


async def measure(url: str, requests: int, concurrency: int, rounds: int) -> dict[str, float]:
    """Best requests/s of ``rounds`` for each way of sending, at ``concurrency`` in flight.

    The ways take turns within each round, so a busy neighbour on the machine slows them alike.
    """
    shared = HttpClient()
    await shared.start()
    client = shared.with_budget(concurrency)
    request = HttpRequest(url, data=BODY, headers=HEADERS)
    bare = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
    own = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))

    def post_with(session: aiohttp.ClientSession) -> Callable[[], Awaitable[None]]:
        async def post() -> None:
            async with session.post(url, data=BODY, headers=HEADERS) as response:
                await response.read()

        return post

    async def budgeted() -> None:
        await client.send(request, timeout=30)

    ways = {"session": post_with(bare), "budget": budgeted, "per-sink-pool": post_with(own)}
    found = dict.fromkeys(ways, 0.0)
    try:
        for send in ways.values():
            await _run(send, 500, concurrency)  # open and warm each pool
        for _ in range(rounds):
            for name, send in ways.items():
                found[name] = max(found[name], await _run(send, requests, concurrency))
    finally:
        await bare.close()
        await own.close()
        await shared.aclose()
    return found


def main() -> None:
    """Print requests/s per way and concurrency."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=5_000, help="per way and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, nargs="*", default=[1, 8, 64])
    args = parser.parse_args()
    peers = LoopbackPeers(api_key="bench-key-0123456789", api_latency_ms=0)
    try:
        for concurrency in args.concurrency:
            found = asyncio.run(
                measure(f"{peers.url}/sink", args.requests, concurrency, args.rounds)
            )
            shown = "  ".join(f"{name} {rate:,.0f}/s" for name, rate in found.items())
            print(f"concurrency {concurrency:>3}: {shown}")
    finally:
        peers.close()


if __name__ == "__main__":
    main()
