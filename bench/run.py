"""notirouter's benchmark: real processes on loopback, ingest / end-to-end / duplicate numbers.

Run ``make bench`` (or ``.venv/bin/python bench/run.py --help``). It starts a loopback webhook
sink and fake Sekoia API (``servers.py``, its own process), then for every scenario and
concurrency level a fresh ``notirouter serve`` on a generated config, drives it with an aiohttp
client from this process, prints a table and writes the numbers as JSON.

Exit status: 0 when every run accepted every event, delivered each exactly once and answered
every repeat as a duplicate; 1 otherwise (the table and JSON say what went wrong).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import os
import platform
import shlex
import sqlite3
import sys
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from harness import HarnessError, LoopbackPeers, enricher_types
from load import make_events
from report import medians, print_table
from scenarios import SCENARIOS, RunOptions, run_scenario

T = TypeVar("T")
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "latest.json"
DEFAULT_EVENTS = 4000
DEFAULT_CONCURRENCY = "8,64"
QUICK_EVENTS = 30
QUICK_CONCURRENCY = "4"
PACKAGES = ("notirouter", "starlette", "uvicorn", "uvloop", "httptools", "aiohttp", "pydantic")


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="bench/run.py",
        description="Benchmark notirouter end to end on loopback.",
    )
    parser.add_argument("-n", "--events", type=int, help=f"events per run [{DEFAULT_EVENTS}]")
    parser.add_argument(
        "-c",
        "--concurrency",
        help=f"concurrent clients, comma-separated levels [{DEFAULT_CONCURRENCY}]",
    )
    parser.add_argument(
        "-r",
        "--repeat",
        type=int,
        default=1,
        help="runs per scenario and level; medians shown when > 1 [1]",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: {QUICK_EVENTS} events at concurrency {QUICK_CONCURRENCY}",
    )
    parser.add_argument(
        "-s",
        "--scenario",
        action="append",
        choices=[s.name for s in SCENARIOS],
        help="run only this scenario (repeatable); default: every available one",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="JSON results [bench/results/latest.json]",
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for all deliveries [120]"
    )
    parser.add_argument(
        "--settle",
        type=float,
        help="seconds to watch for stray deliveries after the repeats [1, --quick 0.2]",
    )
    parser.add_argument(
        "--api-latency-ms",
        type=float,
        default=0.0,
        help="delay of the fake Sekoia API, e.g. 100 for a realistic one [0]",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="notirouter's log level [INFO: the default deployment, a few lines per event]",
    )
    parser.add_argument("--no-access-log", action="store_true", help="set server.access_log: false")
    parser.add_argument(
        "--route-workers", type=int, help="set delivery.route_workers (default: notirouter's)"
    )
    parser.add_argument(
        "--sink-concurrency", type=int, help="set the webhook sink's concurrency (default: its own)"
    )
    parser.add_argument(
        "--workdir", type=Path, help="where the SQLite queue lives (its disk matters: fsync)"
    )
    parser.add_argument("--keep", action="store_true", help="keep each run's config, db and log")
    parser.add_argument(
        "--postgres-url",
        metavar="URL",
        help="queue on PostgreSQL: a fresh database per run on this server (dropped after)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="record each run's serve process with py-spy (collapsed stacks) into DIR",
    )
    parser.add_argument(
        "--profile-gil",
        action="store_true",
        help="with --profile: sample only the thread holding the GIL (CPU, not waits)",
    )
    args = parser.parse_args(argv)
    args.events = args.events or (QUICK_EVENTS if args.quick else DEFAULT_EVENTS)
    levels = args.concurrency or (QUICK_CONCURRENCY if args.quick else DEFAULT_CONCURRENCY)
    try:
        args.levels = [int(level) for level in levels.split(",")]
    except ValueError:
        parser.error("--concurrency takes integers separated by commas, e.g. 8,64")
    if args.events < 1 or args.repeat < 1 or any(level < 1 for level in args.levels):
        parser.error("--events, --concurrency and --repeat must be positive")
    if args.settle is None:
        args.settle = 0.2 if args.quick else 1.0
    return args


def machine_facts(workdir: Path | None) -> dict[str, Any]:
    """What the numbers depend on: CPU, Python, library versions, the queue's filesystem."""
    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        # Other work on the machine skews every number: record how busy it was.
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "cpu_count": os.cpu_count(),
        "cpu_model": model or platform.processor() or None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "sqlite": sqlite3.sqlite_version,
        "queue_filesystem": filesystem_of(workdir or Path(os.environ.get("TMPDIR", "/tmp"))),
        "packages": versions,
    }


def filesystem_of(path: Path) -> str | None:
    """The filesystem type holding ``path`` (tmpfs makes fsync free), from /proc/mounts."""
    try:
        mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return None
    target = str(path.resolve())
    best = max(
        (m for m in mounts if target == m[1] or target.startswith(m[1].rstrip("/") + "/")),
        key=lambda m: len(m[1]),
        default=None,
    )
    return None if best is None else best[2]


async def run_all(args: argparse.Namespace) -> dict[str, Any]:
    """Every selected scenario at every concurrency level."""
    installed = enricher_types()
    wanted = set(args.scenario or [s.name for s in SCENARIOS])
    options = RunOptions(
        timeout=args.timeout,
        settle=args.settle,
        log_level=args.log_level,
        access_log=not args.no_access_log,
        route_workers=args.route_workers,
        sink_concurrency=args.sink_concurrency,
        workdir=args.workdir,
        keep=args.keep,
        profile_dir=args.profile,
        profile_gil=args.profile_gil,
        postgres_url=args.postgres_url,
    )
    events = make_events(args.events, seed=20241215)
    runs: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    peers = LoopbackPeers(api_key="bench-api-key-0123456789", api_latency_ms=args.api_latency_ms)
    try:
        for scenario in SCENARIOS:
            if scenario.name not in wanted:
                continue
            if scenario.requires_enricher and scenario.requires_enricher not in installed:
                reason = f"no enricher type {scenario.requires_enricher!r} is installed"
                skipped.append({"scenario": scenario.name, "reason": reason})
                print(f"skipping {scenario.name}: {reason}", file=sys.stderr)
                continue
            for level in args.levels:
                for repeat in range(1, args.repeat + 1):
                    print(
                        f"running {scenario.name}: {len(events)} events, concurrency {level}, "
                        f"run {repeat}/{args.repeat} ...",
                        file=sys.stderr,
                        flush=True,
                    )
                    run = await run_scenario(scenario, level, events, peers, options)
                    runs.append({"repeat": repeat, **run})
    finally:
        peers.close()
    return {"runs": runs, "skipped": skipped}


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run the load generator on uvloop when installed: the bench shares the machine with the
    server it measures, so its own overhead should be as small as notirouter's could be."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def main(argv: list[str] | None = None) -> int:
    """Run the bench; write JSON; print the table; exit 0 only if every run was correct."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    started = datetime.now(UTC)
    machine = machine_facts(args.workdir)
    began = time.monotonic()
    try:
        outcome = run_loop(run_all(args))
    except HarnessError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    given = sys.argv[1:] if argv is None else argv
    results = {
        "command": shlex.join(["python", "bench/run.py", *given]),
        "started_at": started.isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - began, 1),
        "machine": machine,
        "settings": {
            "queue": "postgres" if args.postgres_url else "sqlite",
            "events": args.events,
            "concurrency": args.levels,
            "repeat": args.repeat,
            "log_level": args.log_level,
            "access_log": not args.no_access_log,
            "route_workers": args.route_workers,
            "sink_concurrency": args.sink_concurrency,
            "api_latency_ms": args.api_latency_ms,
        },
        **outcome,
    }
    results["ok"] = bool(outcome["runs"]) and all(run["ok"] for run in outcome["runs"])
    results["medians"] = medians(outcome["runs"])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print_table(results)
    print(f"\nresults: {args.output}")
    return 0 if results["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
