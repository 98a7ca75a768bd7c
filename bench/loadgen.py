"""The load generator, run as its own process by ``bench/compare.py``: a burst or a steady rate.

It builds the same events as the bench (``load.make_events`` with the same count and seed), so
only numbers cross the process boundary: it prints one JSON document on stdout with each
event's send time (``time.monotonic()``, system-wide on Linux, so the bench compares it with the
sinks' arrival times) and the answers it got.

- ``--concurrency C``: a burst, C clients in a closed loop (each sends its next event when its
  previous one is answered): requests/s.
- ``--rate R``: an open loop, one event every 1/R s whatever the answers; an event's send time
  is the time it was *due*, so a server that falls behind shows as latency instead of slowing
  the load down (no coordinated omission).

``--format alertmanager`` sends each event as Prometheus Alertmanager's ``POST /api/v2/alerts``
body (see :func:`alertmanager_body`) instead of the Sekoia.io webhook body.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
from load import BenchEvent, latency_summary, make_events

REQUEST_TIMEOUT = 120.0
STEADY_CONNECTIONS = 64


def alertmanager_body(event: BenchEvent) -> bytes:
    """The event as one Alertmanager alert: every field a label, so every alert is distinct.

    No ``endsAt``: Alertmanager resolves it after ``resolve_timeout`` (5 min), past the run.
    """
    sekoia = json.loads(event.body)
    labels = {
        "alertname": f"sekoia_{sekoia['type']}_{sekoia['action']}",
        "event_uuid": sekoia["metadata"]["uuid"],
        "alert_uuid": sekoia["attributes"]["uuid"],
        "short_id": sekoia["attributes"]["short_id"],
        "community_uuid": sekoia["metadata"]["community_uuid"],
    }
    return json.dumps([{"labels": labels, "annotations": {}}]).encode()


class Outcome:
    """Answers and timings of one load phase."""

    def __init__(self) -> None:
        self.sent_at: dict[str, float] = {}
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.errors: list[str] = []
        self.started = self.finished = 0.0

    def document(self) -> dict[str, Any]:
        """The JSON printed on stdout."""
        accepted = sum(n for status, n in self.statuses.items() if 200 <= status < 300)
        seconds = self.finished - self.started
        return {
            "accepted": accepted,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": self.errors[:5],
            "error_count": len(self.errors),
            "started": self.started,
            "finished": self.finished,
            "seconds": round(seconds, 3),
            "requests_per_s": round(accepted / seconds, 1) if seconds > 0 else None,
            "latency": latency_summary(self.latencies),
            "sent_at": self.sent_at,
        }


async def _send(
    session: aiohttp.ClientSession, url: str, event: BenchEvent, body: bytes, outcome: Outcome
) -> None:
    started = time.monotonic()
    try:
        async with session.post(
            url, data=body, headers={"Content-Type": "application/json"}
        ) as response:
            await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        outcome.errors.append(f"{type(exc).__name__}: {exc}")
        return
    outcome.latencies.append(time.monotonic() - started)
    outcome.statuses[status] = outcome.statuses.get(status, 0) + 1


async def burst(
    url: str, events: Sequence[BenchEvent], encode: Callable[[BenchEvent], bytes], clients: int
) -> Outcome:
    """Every event once, ``clients`` requests in flight (closed loop)."""
    outcome = Outcome()
    bodies = [encode(event) for event in events]
    pending = iter(zip(events, bodies, strict=True))

    async def client(session: aiohttp.ClientSession) -> None:
        for event, body in pending:
            outcome.sent_at[event.key] = time.monotonic()
            await _send(session, url, event, body, outcome)

    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        outcome.started = time.monotonic()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        outcome.finished = time.monotonic()
    return outcome


async def steady(
    url: str, events: Sequence[BenchEvent], encode: Callable[[BenchEvent], bytes], rate: float
) -> Outcome:
    """One event every ``1/rate`` s (open loop); each event's send time is when it was due."""
    outcome = Outcome()
    bodies = [encode(event) for event in events]
    connector = aiohttp.TCPConnector(limit=STEADY_CONNECTIONS)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks = []
        outcome.started = time.monotonic()
        for i, (event, body) in enumerate(zip(events, bodies, strict=True)):
            due = outcome.started + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            outcome.sent_at[event.key] = due
            tasks.append(asyncio.create_task(_send(session, url, event, body, outcome)))
        await asyncio.gather(*tasks)
        outcome.finished = time.monotonic()
    return outcome


def main(argv: list[str] | None = None) -> None:
    """Parse the options, run the phase, print its JSON document."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--format", choices=["sekoia", "alertmanager"], default="sekoia")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--concurrency", type=int)
    mode.add_argument("--rate", type=float)
    args = parser.parse_args(argv)
    events = make_events(args.count, seed=args.seed)
    encode: Callable[[BenchEvent], bytes] = (
        alertmanager_body if args.format == "alertmanager" else (lambda event: event.body)
    )
    if args.concurrency:
        phase = burst(args.url, events, encode, args.concurrency)
    else:
        phase = steady(args.url, events, encode, args.rate)
    try:
        import uvloop
    except ImportError:
        outcome = asyncio.run(phase)
    else:
        outcome = uvloop.run(phase)
    json.dump(outcome.document(), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
