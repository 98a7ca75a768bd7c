"""The load side: Sekoia-shaped events, concurrent POSTs, and reading the results.

Bodies are built and serialised before the clock starts, so the bench measures notirouter,
not ``json.dumps``.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

COMMUNITY_UUID = "c766cfab-a604-41c5-b95b-c7cc467f7fc4"
REQUEST_TIMEOUT = 60.0


@dataclass(frozen=True)
class BenchEvent:
    """One webhook event: its id (``metadata.uuid``, the dedupe key), its body, and the alert
    short id every notification about it carries (``AL`` + the alert uuid's first 10 hex
    digits, as the fake Sekoia API also answers), by which the loopback sinks count it."""

    id: str
    body: bytes
    key: str = ""


def make_events(count: int, seed: int) -> list[BenchEvent]:
    """``count`` alert-created events with distinct event and alert ids."""
    rng = random.Random(seed)
    events = []
    for _ in range(count):
        event_uuid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        alert_uuid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        short_id = "AL" + alert_uuid.replace("-", "")[:10]
        body = {
            "type": "alert",
            "action": "created",
            "attributes": {
                "uuid": alert_uuid,
                "short_id": short_id,
            },
            "metadata": {
                "version": 2,
                "uuid": event_uuid,
                "created_at": "2024-12-15T12:29:08+00:00",
                "community_uuid": COMMUNITY_UUID,
            },
        }
        events.append(BenchEvent(event_uuid, json.dumps(body).encode(), short_id))
    return events


@dataclass
class Posted:
    """The outcome of POSTing a batch of events."""

    started: float = 0.0
    finished: float = 0.0
    sent_at: dict[str, float] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    duplicates: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        """Requests answered 202."""
        return self.statuses.get(202, 0)


async def post_events(url: str, events: Sequence[BenchEvent], concurrency: int) -> Posted:
    """POST every event once, ``concurrency`` requests in flight, each on its own connection."""
    result = Posted()
    pending = iter(events)
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)

    async def client(session: aiohttp.ClientSession) -> None:
        # One shared iterator: each client takes the next event when its previous one is done,
        # so C requests are always in flight (closed loop), whatever their latency.
        for event in pending:
            started = time.monotonic()
            result.sent_at[event.id] = started
            try:
                async with session.post(url, data=event.body, headers=headers) as response:
                    answer = await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                result.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            result.latencies.append(time.monotonic() - started)
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if status == 202 and json.loads(answer).get("duplicate") is True:
                result.duplicates += 1

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        result.started = time.monotonic()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        result.finished = time.monotonic()
    return result


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile (``fraction`` in 0..1), or ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def latency_summary(seconds: Sequence[float]) -> dict[str, float | None]:
    """p50/p90/p99/max in milliseconds."""

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 2)

    return {
        "p50_ms": ms(percentile(seconds, 0.50)),
        "p90_ms": ms(percentile(seconds, 0.90)),
        "p99_ms": ms(percentile(seconds, 0.99)),
        "max_ms": ms(max(seconds) if seconds else None),
    }


def rate(count: int, seconds: float) -> float | None:
    """Events per second, rounded; ``None`` when nothing was timed."""
    return round(count / seconds, 1) if seconds > 0 and count else None


async def get_json(session: aiohttp.ClientSession, url: str, **params: Any) -> Any:
    """GET a JSON document from a loopback peer."""
    async with session.get(url, params={k: str(v) for k, v in params.items()}) as response:
        response.raise_for_status()
        return await response.json()


def parse_prometheus(text: str) -> dict[str, float]:
    """Prometheus text as ``{'name{labels}': value}``, enough for the few counters we read."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


async def server_counts(session: aiohttp.ClientSession, base_url: str) -> dict[str, float]:
    """notirouter's own view: events received by result and queue depth by state."""
    async with session.get(f"{base_url}/metrics") as response:
        response.raise_for_status()
        samples = parse_prometheus(await response.text())
    wanted = {
        "accepted": 'notirouter_events_received_total{hook="bench",result="accepted"}',
        "duplicate": 'notirouter_events_received_total{hook="bench",result="duplicate"}',
        "events_pending": 'notirouter_queue_jobs{kind="events",state="pending"}',
        "events_routed": 'notirouter_queue_jobs{kind="events",state="routed"}',
        "deliveries_pending": 'notirouter_queue_jobs{kind="deliveries",state="pending"}',
        "deliveries_done": 'notirouter_queue_jobs{kind="deliveries",state="done"}',
        "deliveries_dead": 'notirouter_queue_jobs{kind="deliveries",state="dead"}',
    }
    return {key: samples.get(name, 0.0) for key, name in wanted.items()}
