"""The scenario table, and one measured run of a scenario at one concurrency.

A run starts a fresh ``notirouter serve`` (fresh SQLite file) and goes through three phases:

1. **ingest**: POST N distinct events with C concurrent clients; 202/s and request latency.
   Routing and delivery run in the same server meanwhile, as they would in production.
2. **end to end**: from the first POST until the sink has received all N notifications;
   delivered events/s and per-event latency (POST sent -> notification received). Then wait
   until notirouter has also *recorded* every delivery as done ("settled").
3. **duplicates**: POST the same N events again; each must be answered ``duplicate: true`` and
   the sink must still hold exactly one notification per event.
"""

from __future__ import annotations

import asyncio
import resource
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from harness import (
    LoopbackPeers,
    Notirouter,
    Profiler,
    ServeSettings,
    cpu_seconds,
    write_config,
)
from load import (
    BenchEvent,
    Posted,
    get_json,
    latency_summary,
    post_events,
    rate,
    server_counts,
)
from postgres_db import fresh_database

SETTLE_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class Scenario:
    """A kind of run. ``requires_enricher``: skip unless that enricher type is installed."""

    name: str
    description: str
    enrich: bool = False
    requires_enricher: str | None = None


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("webhook", "alert/created -> one webhook sink, no enrichment"),
    Scenario(
        "sekoia+webhook",
        "alert/created -> sekoia enricher (fake Alert API on loopback) -> one webhook sink",
        enrich=True,
        requires_enricher="sekoia",
    ),
)


@dataclass(frozen=True)
class RunOptions:
    """Knobs shared by every run."""

    timeout: float
    settle: float
    log_level: str
    access_log: bool
    route_workers: int | None
    sink_concurrency: int | None
    workdir: Path | None
    keep: bool
    profile_dir: Path | None = None
    profile_gil: bool = False
    postgres_url: str | None = None


class CpuClock:
    """CPU seconds used since a mark by notirouter (all threads, and its event loop thread
    alone), the loopback peers and the bench itself."""

    def __init__(self, serve_pid: int, peers_pid: int) -> None:
        self.serve_pid = serve_pid
        self.peers_pid = peers_pid
        self.start = self._now()

    def _now(self) -> dict[str, float | None]:
        own = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "serve": cpu_seconds(self.serve_pid),
            # The event loop runs in the main thread; the others are the SQLite writer's.
            "serve_loop": cpu_seconds(self.serve_pid, self.serve_pid),
            "peers": cpu_seconds(self.peers_pid),
            "bench": own.ru_utime + own.ru_stime,
        }

    def lap(self) -> dict[str, float | None]:
        """CPU seconds per process since the previous lap (or creation)."""
        now = self._now()
        spent = {key: _minus(value, self.start[key]) for key, value in now.items()}
        self.start = now
        return spent


def _minus(later: float | None, earlier: float | None) -> float | None:
    return None if later is None or earlier is None else round(later - earlier, 3)


def _plus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a + b, 3)


def ingest_summary(posted: Posted, cpu: dict[str, float | None]) -> dict[str, Any]:
    """Phase 1 (or 3) numbers."""
    seconds = posted.finished - posted.started
    return {
        "accepted": posted.accepted,
        "answered_duplicate": posted.duplicates,
        "statuses": {str(k): v for k, v in sorted(posted.statuses.items())},
        "errors": posted.errors[:5],
        "seconds": round(seconds, 3),
        "events_per_s": rate(posted.accepted, seconds),
        "latency": latency_summary(posted.latencies),
        "cpu_s": cpu,
    }


async def wait_settled(
    session: aiohttp.ClientSession, base_url: str, expected: int, timeout: float
) -> dict[str, float]:
    """Poll notirouter's metrics until every expected delivery is recorded (or time runs out)."""
    deadline = time.monotonic() + timeout
    while True:
        counts = await server_counts(session, base_url)
        done = counts["deliveries_done"] + counts["deliveries_dead"]
        if (done >= expected and not counts["deliveries_pending"]) or time.monotonic() > deadline:
            return counts
        await asyncio.sleep(SETTLE_POLL_SECONDS)


async def run_scenario(
    scenario: Scenario,
    concurrency: int,
    events: list[BenchEvent],
    peers: LoopbackPeers,
    options: RunOptions,
) -> dict[str, Any]:
    """One fresh server (and queue), three phases; the numbers and any problem found."""
    if options.postgres_url is None:
        return await _run_on(scenario, concurrency, events, peers, options, None)
    async with fresh_database(options.postgres_url) as url:
        return await _run_on(scenario, concurrency, events, peers, options, url)


async def _run_on(
    scenario: Scenario,
    concurrency: int,
    events: list[BenchEvent],
    peers: LoopbackPeers,
    options: RunOptions,
    postgres_url: str | None,
) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="notirouter-bench-", dir=options.workdir))
    settings = ServeSettings(
        workdir=workdir,
        sink_url=f"{peers.url}/sink",
        api_url=peers.url,
        api_key=peers.api_key,
        token=secrets.token_hex(16),
        enrich=scenario.enrich,
        access_log=options.access_log,
        route_workers=options.route_workers,
        sink_concurrency=options.sink_concurrency,
        postgres_url=postgres_url,
    )
    server = Notirouter(write_config(settings), log_level=options.log_level)
    profiler = None
    if options.profile_dir is not None:
        label = f"{scenario.name.replace('+', '-')}-c{concurrency}"
        profiler = Profiler(
            options.profile_dir / f"{label}.folded", server.pid, gil_only=options.profile_gil
        )
    result: dict[str, Any] = {
        "scenario": scenario.name,
        "concurrency": concurrency,
        "events": len(events),
        "serve_pid": server.pid,
    }
    try:
        result.update(
            await _phases(scenario, server, settings.token, events, concurrency, peers, options)
        )
    finally:
        exit_code = server.close()
        if profiler is not None:
            profiler.wait()
            result["profile"] = str(profiler.path)
        result["serve_exit_code"] = exit_code
        # SIGTERM drains and exits 0 (anything else is a problem: a crash, or a lost drain).
        if exit_code != 0:
            result.setdefault("problems", []).append(
                f"serve exited with {exit_code}:\n{server.log_tail()}"
            )
        if options.keep:
            result["workdir"] = str(workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    result["ok"] = not result.get("problems")
    return result


async def _phases(
    scenario: Scenario,
    server: Notirouter,
    token: str,
    events: list[BenchEvent],
    concurrency: int,
    peers: LoopbackPeers,
    options: RunOptions,
) -> dict[str, Any]:
    n = len(events)
    hook_url = f"{server.url}/hooks/{token}"
    problems: list[str] = []
    control_timeout = aiohttp.ClientTimeout(total=options.timeout + 30)
    async with aiohttp.ClientSession(timeout=control_timeout) as control:
        async with control.post(f"{peers.url}/reset") as response:
            response.raise_for_status()
        cpu = CpuClock(server.pid, peers.pid)

        # Phases 1 and 2 overlap: the sink is watched while the events are being posted.
        delivered = asyncio.create_task(
            get_json(control, f"{peers.url}/wait", count=n, timeout=options.timeout)
        )
        posted = await post_events(hook_url, events, concurrency)
        ingest = ingest_summary(posted, cpu.lap())
        sink = await delivered
        e2e_cpu = cpu.lap()
        arrivals: dict[str, float] = (await get_json(control, f"{peers.url}/stats", arrivals=1))[
            "arrivals"
        ]
        settled = await wait_settled(control, server.url, n, options.timeout)
        settled_at = time.monotonic()
        cpu.lap()
        e2e_seconds = (sink["last_at"] or posted.started) - posted.started
        delays = [arrivals[e.id] - posted.sent_at[e.id] for e in events if e.id in arrivals]
        serve_cpu = _plus(e2e_cpu["serve"], ingest["cpu_s"]["serve"])
        loop_cpu = _plus(e2e_cpu["serve_loop"], ingest["cpu_s"]["serve_loop"])
        end_to_end = {
            "delivered": sink["unique"],
            "seconds": round(e2e_seconds, 3),
            "events_per_s": rate(sink["unique"], e2e_seconds),
            "settled_seconds": round(settled_at - posted.started, 3),
            "delivery_latency": latency_summary(delays),
            "serve_cpu_s": serve_cpu,
            "serve_loop_cpu_s": loop_cpu,
            "serve_cpu_ms_per_event": None if serve_cpu is None else round(serve_cpu * 1000 / n, 3),
            "enriched": sink["enriched"],
            "api_requests": sink["api_requests"],
        }

        again = await post_events(hook_url, events, concurrency)
        duplicates = ingest_summary(again, cpu.lap())
        # Nothing new was stored, so nothing new can be delivered; wait a little in case.
        await asyncio.sleep(options.settle)
        final_sink = await get_json(control, f"{peers.url}/stats")
        final = await server_counts(control, server.url)
        duplicates["sink_received_total"] = final_sink["received"]
        duplicates["delivered_twice"] = final_sink["duplicates"]

    if posted.errors or posted.accepted != n or posted.duplicates:
        problems.append(
            f"ingest: {posted.accepted}/{n} accepted, {posted.duplicates} flagged duplicate, "
            f"statuses {posted.statuses}, errors {posted.errors[:3]}"
        )
    if sink["unique"] != n:
        problems.append(f"end to end: {sink['unique']}/{n} delivered within {options.timeout:g}s")
    if scenario.enrich and sink["enriched"] != n:
        problems.append(f"enrichment: {sink['enriched']}/{n} notifications carried their alert")
    if settled["deliveries_done"] != n or settled["deliveries_pending"]:
        problems.append(f"end to end: notirouter's queue did not settle: {settled}")
    if again.duplicates != n or again.errors:
        problems.append(
            f"duplicates: {again.duplicates}/{n} answered duplicate, statuses {again.statuses}"
        )
    if final_sink["received"] != n or final_sink["duplicates"] or final_sink["unparsed"]:
        problems.append(f"sink: expected {n} notifications exactly once, got {final_sink}")
    if final["deliveries_done"] != n or final["deliveries_dead"] or final["events_pending"]:
        problems.append(f"queue after the run: {final}")
    return {
        "ingest": ingest,
        "end_to_end": end_to_end,
        "duplicates": duplicates,
        "queue_after": final,
        "problems": problems,
    }
