"""The bench's loopback peers, run as their own process: a webhook sink and a fake Sekoia API.

It runs in a separate process so that the CPU it spends parsing notifications does not count
against notirouter's event loop. It listens on 127.0.0.1 only, on a free port that it announces
as one JSON line on stdout (``{"port": 41234}``), and stops when its stdin closes (so it never
outlives the bench, even if the bench is killed) or on SIGTERM.

Endpoints:

- ``POST /sink``: the webhook sink. Counts each notification by the Sekoia event id it carries
  (``event.metadata.uuid`` in the webhook sink's default body), and those enriched with their
  alert (``enrichment.alert``), and answers 200.
- ``GET /stats``: counters; ``?arrivals=1`` adds each event id's first arrival time.
- ``GET /wait?count=N&timeout=S``: answers ``/stats`` as soon as N distinct events arrived (or
  when the timeout runs out), so the bench needs no polling loop to time the last delivery.
- ``POST /reset``: forget everything received; ``?alert_bytes=N`` makes the fake API answer
  alerts of about N bytes of JSON from then on (``0``: the template as it is).
- ``POST /to/{channel}``: a sink of any shape (webhook, Teams, Mattermost, Alertmanager's
  webhook, the seed's Teams post): each notification is counted, per channel, by the first
  alert short id in its body (``AL`` + 10 hex digits, which ``load.make_events`` derives from
  the alert uuid and the fake API repeats), and answers 200.
- ``GET /channel/{channel}?count=N&timeout=S&idle=I&arrivals=1``: that channel's counters, as
  soon as N distinct alerts arrived there (or when the timeout runs out, or nothing arrived for
  I seconds), with their first arrival times.
- ``GET /v1/sic/alerts/{id}`` (and the ``/api/v1/...`` form used with app hosts): a fake
  Sekoia.io Alert API answering a realistic alert (``sekoia_alert.json``) with the requested
  id, after ``--api-latency-ms``; it checks ``Authorization: Bearer <--api-key>``.

Arrival times are ``time.monotonic()``: a system-wide clock on Linux and macOS, so the bench
process can compare them with its own send times.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from aiohttp import web

ALERT_TEMPLATE: dict[str, Any] = json.loads(
    (Path(__file__).parent / "sekoia_alert.json").read_text(encoding="utf-8")
)
UUID_PATTERN = re.compile(r"^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")
SHORT_ID_PATTERN = re.compile(r"^[A-Za-z0-9]+$")
CHANNEL_KEY = re.compile(rb"AL[0-9a-f]{10}")
# One technique entry of a padded alert, ~200 bytes of JSON: size comes from structure, as in
# real alerts with many techniques and events, not from one long string.
PAD_TTP: dict[str, str] = {
    "id": "attack-pattern--0a3ead4e-6d47-4ccb-854c-a6a4f9d96b22",
    "type": "attack-pattern",
    "name": "Padding technique",
    "description": "An entry that makes the enriched alert as large as the run asks for.",
}


class Channel:
    """One sink path of ``/to/{channel}``: counts and first arrivals per alert short id."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.arrivals: dict[str, float] = {}
        self.received = 0
        self.unparsed = 0
        self.bytes = 0
        self.changed = asyncio.Condition()

    async def record(self, body: bytes) -> None:
        """Count one notification and wake any waiter."""
        now = time.monotonic()
        self.received += 1
        self.bytes += len(body)
        found = CHANNEL_KEY.search(body)
        if found is None:
            self.unparsed += 1
        else:
            key = found.group().decode()
            seen = self.counts.get(key, 0)
            self.counts[key] = seen + 1
            if not seen:
                self.arrivals[key] = now
        async with self.changed:
            self.changed.notify_all()

    def stats(self, *, arrivals: bool = False) -> dict[str, Any]:
        """Counters, and the arrival time of each alert when asked."""
        times = self.arrivals.values()
        result: dict[str, Any] = {
            "received": self.received,
            "unique": len(self.counts),
            "duplicates": self.received - self.unparsed - len(self.counts),
            "unparsed": self.unparsed,
            "bytes": self.bytes,
            "first_at": min(times) if times else None,
            "last_at": max(times) if times else None,
        }
        if arrivals:
            result["arrivals"] = self.arrivals
        return result


class Recorder:
    """What the sink received: a count and first arrival time per event id."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.arrivals: dict[str, float] = {}
        self.received = 0
        self.unparsed = 0
        self.enriched = 0
        self.api_requests = 0
        self.alert_bytes = 0
        self.channels: dict[str, Channel] = {}
        self.changed = asyncio.Condition()

    def channel(self, name: str) -> Channel:
        """The channel called ``name``, created on first use."""
        found = self.channels.get(name)
        if found is None:
            found = self.channels[name] = Channel()
        return found

    def reset(self) -> None:
        """Forget everything (between runs)."""
        self.counts.clear()
        self.arrivals.clear()
        self.channels.clear()
        self.received = self.unparsed = self.enriched = self.api_requests = 0

    async def record(self, body: bytes) -> None:
        """Count one notification and wake any ``/wait`` request."""
        now = time.monotonic()
        self.received += 1
        key, enriched = read_notification(body)
        self.enriched += enriched
        if key is None:
            self.unparsed += 1
            key = f"unparsed-{self.unparsed}"
        seen = self.counts.get(key, 0)
        self.counts[key] = seen + 1
        if not seen:
            self.arrivals[key] = now
        async with self.changed:
            self.changed.notify_all()

    def stats(self, *, arrivals: bool = False) -> dict[str, Any]:
        """Counters, and the arrival time of each event when asked."""
        times = self.arrivals.values()
        result: dict[str, Any] = {
            "received": self.received,
            "unique": len(self.counts),
            "duplicates": self.received - len(self.counts),
            "unparsed": self.unparsed,
            "enriched": self.enriched,
            "api_requests": self.api_requests,
            "first_at": min(times) if times else None,
            "last_at": max(times) if times else None,
        }
        if arrivals:
            result["arrivals"] = self.arrivals
        return result


def read_notification(body: bytes) -> tuple[str | None, bool]:
    """The Sekoia event id in a webhook-sink body (``None`` if it has none), and whether the
    notification carries the alert fetched from the (fake) API for that event's alert."""
    try:
        payload = json.loads(body)
        uuid = payload["event"]["metadata"]["uuid"]
    except (ValueError, KeyError, TypeError):
        return None, False
    try:
        alert_uuid = payload["event"]["attributes"]["uuid"]
        enriched = payload["enrichment"]["alert"]["uuid"] == alert_uuid
    except (KeyError, TypeError):
        enriched = False
    return (uuid if isinstance(uuid, str) else None), enriched


def fake_alert(alert_id: str, size: int = 0) -> dict[str, Any]:
    """The template alert, made to be the alert with ``alert_id`` (a uuid or a short id), of
    about ``size`` bytes of JSON when given (techniques dropped or added to get there)."""
    alert = copy.deepcopy(ALERT_TEMPLATE)
    if size:
        alert["ttps"] = []
        for key in ("rule", "entity", "details"):
            if len(json.dumps(alert)) > size:
                alert.pop(key, None)
        entry = len(json.dumps(PAD_TTP)) + 2
        alert["ttps"] = [PAD_TTP] * max(0, (size - len(json.dumps(alert))) // entry)
    if UUID_PATTERN.match(alert_id):
        alert["uuid"] = alert_id
        alert["short_id"] = "AL" + alert_id.replace("-", "")[:10]
    else:
        alert["short_id"] = alert_id
    alert["title"] = f"Bench alert {alert['short_id']}"
    return alert


def make_app(recorder: Recorder, *, api_key: str, api_latency: float) -> web.Application:
    """The aiohttp application with every endpoint of the module docstring."""

    async def sink(request: web.Request) -> web.Response:
        await recorder.record(await request.read())
        return web.Response(text="ok")

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(recorder.stats(arrivals="arrivals" in request.query))

    async def wait(request: web.Request) -> web.Response:
        count = int(request.query.get("count", "0"))
        timeout = float(request.query.get("timeout", "30"))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout), recorder.changed:
                await recorder.changed.wait_for(lambda: len(recorder.counts) >= count)
        return web.json_response(recorder.stats())

    async def reset(request: web.Request) -> web.Response:
        recorder.reset()
        recorder.alert_bytes = int(request.query.get("alert_bytes", "0"))
        return web.json_response({"reset": True})

    async def alert(request: web.Request) -> web.Response:
        recorder.api_requests += 1
        if request.headers.get("Authorization") != f"Bearer {api_key}":
            return web.json_response({"message": "unauthorized"}, status=401)
        alert_id = request.match_info["alert_id"]
        if not (UUID_PATTERN.match(alert_id) or SHORT_ID_PATTERN.match(alert_id)):
            return web.json_response({"message": "not found"}, status=404)
        if api_latency:
            await asyncio.sleep(api_latency)
        return web.json_response(fake_alert(alert_id, recorder.alert_bytes))

    async def to_channel(request: web.Request) -> web.Response:
        await recorder.channel(request.match_info["channel"]).record(await request.read())
        return web.Response(text="ok")

    async def channel_stats(request: web.Request) -> web.Response:
        channel = recorder.channel(request.match_info["channel"])
        count = int(request.query.get("count", "0"))
        deadline = time.monotonic() + float(request.query.get("timeout", "0"))
        # A system that drops events (the seed does, on timeouts) would hold every wait to the
        # deadline: give up once nothing new arrived for ``idle`` seconds.
        idle = float(request.query.get("idle", "0")) or None
        seen = -1
        while count and len(channel.counts) < count and channel.received != seen:
            seen = channel.received
            left = deadline - time.monotonic()
            if left <= 0:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, idle or left)), channel.changed:
                    await channel.changed.wait_for(lambda: len(channel.counts) >= count)
        result = channel.stats(arrivals="arrivals" in request.query)
        result["api_requests"] = recorder.api_requests
        return web.json_response(result)

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/sink", sink)
    app.router.add_get("/stats", stats)
    app.router.add_get("/wait", wait)
    app.router.add_post("/reset", reset)
    app.router.add_post("/to/{channel}", to_channel)
    app.router.add_get("/channel/{channel}", channel_stats)
    app.router.add_get("/v1/sic/alerts/{alert_id}", alert)
    app.router.add_get("/api/v1/sic/alerts/{alert_id}", alert)
    return app


async def serve(api_key: str, api_latency: float) -> None:
    """Listen on a free loopback port, announce it, run until stdin closes or SIGTERM."""
    recorder = Recorder()
    runner = web.AppRunner(make_app(recorder, api_key=api_key, api_latency=api_latency))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    print(json.dumps({"port": port}), flush=True)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)

    # A closed stdin means the bench went away: stop rather than linger as an orphan. A daemon
    # thread, not the loop's executor, whose shutdown would wait for the blocked read forever;
    # and os.read on the raw descriptor, because a daemon thread blocked inside sys.stdin's
    # buffered reader at interpreter exit is a fatal error.
    def watch_stdin() -> None:
        while os.read(sys.stdin.fileno(), 4096):
            pass
        with contextlib.suppress(RuntimeError):  # the loop already closed
            loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    """Parse the options and serve (with uvloop when installed, as notirouter does)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-key", default="bench-api-key", help="expected Bearer token")
    parser.add_argument("--api-latency-ms", type=float, default=0.0, help="fake API delay")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.api_key, args.api_latency_ms / 1000))
    else:
        uvloop.run(serve(args.api_key, args.api_latency_ms / 1000))


if __name__ == "__main__":
    main()
