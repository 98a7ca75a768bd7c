"""``make bench``: notirouter and its references side by side, in one run, measured the same way.

Every system runs in its own process(es), the loopback sinks and fake Sekoia API in another
(``servers.py``), the load generator in a third (``loadgen.py``, one per phase); this process
only starts them, waits on the sinks and computes the numbers. For each system:

1. **burst**: 5,000 events POSTed by 32 clients: ingest requests/s; then delivered events/s,
   from the first POST until the last event reached every sink of its route;
2. **steady**: 200 events/s for 10 s (open loop): end-to-end p50/p99, from the time each event
   was due to be POSTed until it reached the last of its sinks;
3. the system's **peak RSS** (``VmHWM``, summed over its processes) at the end.

Systems: the bare Starlette endpoint, the seed's receiver (1,000 events and 3 s steady: it does
~40/s), Alertmanager, then notirouter on SQLite, on PostgreSQL, and on PostgreSQL with one
process per core (``serve`` + ``worker``), each with one webhook sink and with Sekoia enrichment
+ Teams + Mattermost. Then, on SQLite: 100,000 events queued behind a sink that is down while
another sink takes the steady load; 1,000 routes instead of 10; a 20 KB alert instead of 1 KB.

It prints the table (ratios to the references, PASS/MISS per target: ``compare_report.py``) and
writes every number as JSON to ``bench/results/<UTC timestamp>.json``. ``--quick`` runs the same
path with a few hundred events (the smoke test). Exit status 1 if an event was refused, lost or
delivered twice (never for a missed target: that is what the table is for).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import alertmanager
import compare_report
import notirouter_configs
import systems
from harness import BENCH_DIR, HarnessError, LoopbackPeers, free_port
from load import latency_summary, make_events, server_counts
from postgres_db import fresh_database
from run import machine_facts

API_KEY = "bench-api-key-0123456789"
BURST_SEED = 15001
STEADY_SEED = 15002
LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
GROUPS = (
    "bare",
    "alertmanager",
    "seed",
    "sqlite",
    "postgres",
    "postgres-multi",
    "backlog",
    "routes",
    "size",
)


@dataclass(frozen=True)
class Sizes:
    """How much load each phase sends."""

    burst: int
    clients: int
    rate: float
    steady_s: float
    seed_burst: int
    seed_steady_s: float
    backlog: int
    alert_bytes: int = 1024
    large_alert_bytes: int = 20 * 1024
    routes: int = 10
    many_routes: int = 1000


FULL = Sizes(
    burst=5000, clients=32, rate=200, steady_s=10, seed_burst=1000, seed_steady_s=3,
    backlog=100_000,
)  # fmt: skip
QUICK = Sizes(
    burst=50, clients=32, rate=200, steady_s=0.25, seed_burst=10, seed_steady_s=0.05,
    backlog=200, many_routes=100,
)  # fmt: skip


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="bench/compare.py", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the same path, a few hundred events")
    parser.add_argument(
        "--only",
        help=f"comma-separated groups to run, of: {','.join(GROUPS)} [all]",
    )
    parser.add_argument(
        "--postgres-url",
        help="a PostgreSQL user that may create databases (a fresh one per run, dropped after) "
        "[$NOTIROUTER_TEST_POSTGRES_URL, else the local server]",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=os.cpu_count() or 2,
        help="notirouter processes in the multi-process runs: serve + N-1 workers [CPU count]",
    )
    parser.add_argument("--burst", type=int, help=f"events per burst [{FULL.burst:,}]")
    parser.add_argument(
        "--seed-burst",
        type=int,
        help=f"events per burst for the seed receiver [{FULL.seed_burst:,}]",
    )
    parser.add_argument(
        "--backlog", type=int, help=f"events queued behind the sink that is down [{FULL.backlog:,}]"
    )
    parser.add_argument(
        "--steady-seconds", type=float, help=f"length of the steady phase [{FULL.steady_s:g}]"
    )
    parser.add_argument("-o", "--output", type=Path, help="JSON path [bench/results/<UTC>.json]")
    parser.add_argument("--workdir", type=Path, help="where the SQLite queues live [$TMPDIR]")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for delivery")
    parser.add_argument(
        "--stall",
        type=float,
        default=30,
        help="stop waiting for deliveries after this many seconds without one [30]",
    )
    parser.add_argument("--log-level", default="INFO", help="notirouter's log level [INFO]")
    args = parser.parse_args(list(argv))
    sizes = QUICK if args.quick else FULL
    given = {
        "burst": args.burst,
        "seed_burst": args.seed_burst,
        "backlog": args.backlog,
        "steady_s": args.steady_seconds,
    }
    args.sizes = replace(sizes, **{k: v for k, v in given.items() if v is not None})
    args.groups = GROUPS if not args.only else tuple(args.only.split(","))
    unknown = set(args.groups) - set(GROUPS)
    if unknown:
        parser.error(f"unknown group(s) {', '.join(sorted(unknown))}; choose from {GROUPS}")
    return args


class Bench:
    """One run of the comparison: the peers, the sizes, the rows measured so far."""

    def __init__(self, args: argparse.Namespace, peers: LoopbackPeers) -> None:
        self.args = args
        self.sizes: Sizes = args.sizes
        self.peers = peers
        self.rows: list[dict[str, Any]] = []
        self.skipped: list[dict[str, str]] = []
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=args.timeout + 60))

    def skip(self, group: str, reason: str) -> None:
        """Say why a reference or a group is missing, and go on."""
        print(f"bench: {group} skipped: {reason}", file=sys.stderr, flush=True)
        self.skipped.append({"group": group, "reason": reason})

    async def loadgen(
        self, url: str, count: int, seed: int, fmt: str, **mode: float
    ) -> dict[str, Any]:
        """One phase of load, from its own process; its JSON document."""
        option, value = next(iter(mode.items()))
        command = [
            sys.executable,
            str(BENCH_DIR / "loadgen.py"),
            *("--url", url, "--count", str(count), "--seed", str(seed), "--format", fmt),
            f"--{option}",
            str(value),
        ]
        process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
        out, _ = await process.communicate()
        if process.returncode != 0:
            raise HarnessError(f"the load generator failed ({process.returncode})")
        result: dict[str, Any] = json.loads(out)
        return result

    async def channels(self, names: Sequence[str], count: int) -> dict[str, dict[str, Any]]:
        """Each sink channel's stats once ``count`` alerts arrived there (or at the timeout)."""

        async def one(name: str) -> dict[str, Any]:
            params = {
                "count": str(count),
                "timeout": str(self.args.timeout),
                "idle": str(self.args.stall),
                "arrivals": "1",
            }
            url = f"{self.peers.url}/channel/{name}"
            async with self.session.get(url, params=params) as response:
                response.raise_for_status()
                stats: dict[str, Any] = await response.json()
                return stats

        return dict(zip(names, await asyncio.gather(*map(one, names)), strict=True))

    async def measure(
        self,
        system: systems.Started,
        *,
        channels: Sequence[str],
        fmt: str = "sekoia",
        burst: int | None = None,
        steady_s: float | None = None,
        alert_bytes: int | None = None,
        durable: bool = True,
    ) -> dict[str, Any]:
        """Burst, then steady, then peak RSS; the numbers and any problem seen.

        ``durable=False`` (the seed, which drops an event whose API call or post fails, and
        drops connections when overloaded): events refused or not delivered are counted as
        ``lost``, not as a problem of the bench."""
        sizes = self.sizes
        burst = sizes.burst if burst is None else burst
        steady_s = sizes.steady_s if steady_s is None else steady_s
        reset = {"alert_bytes": str(sizes.alert_bytes if alert_bytes is None else alert_bytes)}
        async with self.session.post(f"{self.peers.url}/reset", params=reset) as response:
            response.raise_for_status()
        began = time.monotonic()
        result: dict[str, Any] = {"load_average_before": round(os.getloadavg()[0], 2)}
        problems: list[str] = []
        lost: list[str] = problems if durable else result.setdefault("lost", [])
        posted = await self.loadgen(
            system.ingest_url, burst, BURST_SEED, fmt, concurrency=sizes.clients
        )
        result["ingest"] = _ingest(posted, burst, lost)
        if channels:
            keys = [event.key for event in make_events(burst, seed=BURST_SEED)]
            stats = await self.channels(channels, burst)
            arrivals = _last_arrivals(stats)
            got = [arrivals[key] for key in keys if key in arrivals]
            seconds = (max(got) - posted["started"]) if got else 0.0
            result["delivered"] = {
                "events": len(got),
                "seconds": round(seconds, 3),
                "events_per_s": round(len(got) / seconds, 1) if seconds > 0 else None,
                "latency": latency_summary(
                    [arrivals[k] - posted["sent_at"][k] for k in keys if k in arrivals]
                ),
                "api_requests": max(s["api_requests"] for s in stats.values()),
            }
            if len(got) != burst:
                lost.append(f"burst: {len(got)}/{burst} delivered to every sink in time")
            if steady_s > 0:
                n = max(1, round(sizes.rate * steady_s))
                sent = await self.loadgen(system.ingest_url, n, STEADY_SEED, fmt, rate=sizes.rate)
                stats = await self.channels(channels, burst + n)
                arrivals = _last_arrivals(stats)
                delays = [
                    arrivals[e.key] - sent["sent_at"][e.key]
                    for e in make_events(n, seed=STEADY_SEED)
                    if e.key in arrivals
                ]
                result["steady"] = {
                    "rate": sizes.rate,
                    "events": n,
                    "delivered": len(delays),
                    "ingest": _ingest(sent, n, lost),
                    "latency": latency_summary(delays),
                }
                if len(delays) != n:
                    lost.append(f"steady: {len(delays)}/{n} delivered to every sink in time")
            result["sinks"] = {
                name: {k: v for k, v in s.items() if k != "arrivals"} for name, s in stats.items()
            }
            for name, s in stats.items():
                if s["duplicates"] or s["unparsed"]:
                    problems.append(
                        f"sink {name}: {s['duplicates']} duplicates, {s['unparsed']} unparsed"
                    )
        result["peak_rss_mb"] = system.peak_rss_mb()
        result["load_average_after"] = round(os.getloadavg()[0], 2)
        result["measured_s"] = round(time.monotonic() - began, 1)
        result["problems"] = problems
        return result

    def add(self, row: dict[str, Any], started: systems.Started | None, **facts: Any) -> None:
        """Record a measured row, print one progress line."""
        if started is not None:
            codes = started.close()
            row["exit_codes"] = codes
            if started.notirouter and any(codes):
                row["problems"].append(f"exit codes {codes}:\n{started.log_tail()}")
        row.update(facts)
        row["ok"] = not row["problems"]
        self.rows.append(row)
        delivered = (row.get("delivered") or {}).get("events_per_s")
        print(
            f"bench: {row['id']}: ingest {row['ingest']['requests_per_s']} req/s, "
            f"delivered {delivered} ev/s, peak RSS {row['peak_rss_mb']} MB"
            + ("" if row["ok"] else f"; PROBLEMS: {row['problems']}"),
            file=sys.stderr,
            flush=True,
        )

    # --- the groups -----------------------------------------------------------------------

    async def bare(self, workdir: Path) -> None:
        started = systems.start_bare(workdir)
        try:
            row = await self.measure(started, channels=[])
        except BaseException:
            started.close()
            raise
        self.add(row, started, id="bare", label="bare Starlette endpoint (read body, 202)")

    async def alertmanager(self, workdir: Path) -> None:
        binary, how = alertmanager.ensure_installed()
        if binary is None:
            self.skip("alertmanager", how)
            return
        started = systems.start_alertmanager(binary, workdir, f"{self.peers.url}/to/am")
        try:
            row = await self.measure(started, channels=["am"], fmt="alertmanager")
        except BaseException:
            started.close()
            raise
        version = alertmanager.version(binary)
        self.add(
            row,
            started,
            id="alertmanager",
            label=f"Alertmanager {version} (one webhook receiver, no enrichment, not durable)",
            version=version,
        )

    async def seed(self, workdir: Path) -> None:
        missing = [m for m in ("fastapi", "httpx") if not _importable(m)]
        if missing:
            self.skip("seed", f"{', '.join(missing)} not installed (pip install -e '.[bench]')")
            return
        started = systems.start_seed(workdir, self.peers.url, API_KEY)
        try:
            row = await self.measure(
                started,
                channels=["seed"],
                burst=self.sizes.seed_burst,
                steady_s=self.sizes.seed_steady_s,
                durable=False,
            )
        except BaseException:
            started.close()
            raise
        self.add(row, started, id="seed", label="seed sample (enrichment + one Teams post)")

    async def notirouter(
        self,
        workdir: Path,
        *,
        kind: str,
        backend: str,
        processes: int = 1,
        routes: int | None = None,
        alert_bytes: int | None = None,
        burst: int | None = None,
        row_id: str,
        label: str,
    ) -> None:
        """One notirouter row: a fresh queue, its config, its processes, the phases."""
        routes = self.sizes.routes if routes is None else routes
        async with self.queue(backend, workdir) as queue:
            down_url = f"http://127.0.0.1:{free_port()}/down"  # nothing listens there
            config = notirouter_configs.write(
                workdir,
                kind=kind,
                peers_url=self.peers.url,
                api_key=API_KEY,
                queue=queue,
                routes=routes,
                down_url=down_url,
            )
            started = systems.start_notirouter(
                config, processes=processes, log_level=self.args.log_level
            )
            try:
                channels = {"webhook": ["webhook"], "enriched": ["teams", "mattermost"]}.get(
                    kind, ["up"]
                )
                row = await self.measure(
                    started, channels=channels, alert_bytes=alert_bytes, burst=burst
                )
                if kind == "backlog":
                    counts = await server_counts(self.session, started.notirouter[0].url)
                    row["queued_for_down_sink"] = counts["deliveries_pending"]
            except BaseException:
                started.close()
                raise
        self.add(
            row,
            started,
            id=row_id,
            label=label,
            work=kind,
            backend=backend,
            processes=processes,
            routes=routes,
            alert_bytes=self.sizes.alert_bytes if alert_bytes is None else alert_bytes,
        )

    @contextlib.asynccontextmanager
    async def queue(self, backend: str, workdir: Path) -> AsyncIterator[dict[str, Any]]:
        """The ``queue:`` section of a fresh queue: a new SQLite file, or a new database."""
        if backend == "sqlite":
            yield {"backend": "sqlite", "path": str(workdir / "queue.db")}
            return
        async with fresh_database(self.args.postgres_url) as url:
            yield {"backend": "postgres", "url": url}

    async def run(self) -> None:
        """Every selected group, in order."""
        groups = self.args.groups
        sizes = self.sizes
        plan: list[tuple[str, str, dict[str, Any]]] = []
        for group in ("sqlite", "postgres", "postgres-multi"):
            if group not in groups:
                continue
            backend = "sqlite" if group == "sqlite" else "postgres"
            processes = self.args.processes if group == "postgres-multi" else 1
            where = f"{backend}, {processes} process{'es' if processes > 1 else ''}"
            plan.append(
                (
                    group,
                    f"notirouter-{group}-webhook",
                    {
                        "kind": "webhook",
                        "backend": backend,
                        "processes": processes,
                        "label": f"notirouter, one webhook sink, no enrichment ({where})",
                    },
                )
            )
            plan.append(
                (
                    group,
                    f"notirouter-{group}-enriched",
                    {
                        "kind": "enriched",
                        "backend": backend,
                        "processes": processes,
                        "label": f"notirouter, Sekoia enrichment + Teams + Mattermost ({where})",
                    },
                )
            )
        extras = {
            "backlog": (
                "notirouter-sqlite-backlog",
                {
                    "kind": "backlog",
                    "backend": "sqlite",
                    "burst": sizes.backlog,
                    "label": f"notirouter, {sizes.backlog:,} events queued behind a sink that "
                    "is down, another sink up (sqlite, 1 process)",
                },
            ),
            "routes": (
                "notirouter-sqlite-webhook-many-routes",
                {
                    "kind": "webhook",
                    "backend": "sqlite",
                    "routes": sizes.many_routes,
                    "label": f"notirouter, one webhook sink, {sizes.many_routes:,} routes "
                    "(sqlite, 1 process)",
                },
            ),
            "size": (
                "notirouter-sqlite-enriched-large-alert",
                {
                    "kind": "enriched",
                    "backend": "sqlite",
                    "alert_bytes": sizes.large_alert_bytes,
                    "label": f"notirouter, Sekoia enrichment + Teams + Mattermost, "
                    f"{sizes.large_alert_bytes // 1024} KB alert (sqlite, 1 process)",
                },
            ),
        }
        plan += [(group, *extras[group]) for group in extras if group in groups]
        if any(group.startswith("postgres") for group, _, _ in plan):
            reason = await _postgres_missing(self.args.postgres_url)
            if reason:
                for group in ("postgres", "postgres-multi"):
                    if group in groups:
                        self.skip(group, reason)
                plan = [step for step in plan if not step[0].startswith("postgres")]
        for group in ("bare", "alertmanager", "seed"):
            if group in groups:
                with _workdir(self.args.workdir) as workdir:
                    await getattr(self, group)(workdir)
        for _group, row_id, options in plan:
            with _workdir(self.args.workdir) as workdir:
                await self.notirouter(workdir, row_id=row_id, **options)


def _ingest(posted: dict[str, Any], expected: int, problems: list[str]) -> dict[str, Any]:
    if posted["accepted"] != expected:
        problems.append(
            f"ingest: {posted['accepted']}/{expected} accepted, statuses {posted['statuses']}, "
            f"errors {posted['errors'][:3]}"
        )
    return {k: v for k, v in posted.items() if k not in ("sent_at", "started", "finished")}


def _last_arrivals(stats: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Per alert, when it had reached *every* channel (its last arrival); only those that did."""
    maps = [s["arrivals"] for s in stats.values()]
    common = set(maps[0]).intersection(*maps[1:])
    return {key: max(m[key] for m in maps) for key in common}


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


async def _postgres_missing(url: str) -> str | None:
    """Why the PostgreSQL rows cannot run, or ``None``."""
    try:
        import asyncpg
    except ImportError:
        return "asyncpg is not installed (pip install -e '.[postgres]')"
    try:
        connection = await asyncpg.connect(url, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"cannot connect to PostgreSQL ({type(exc).__name__}: {exc}); set --postgres-url"
    await connection.close()
    return None


@contextlib.contextmanager
def _workdir(parent: Path | None) -> Any:
    with tempfile.TemporaryDirectory(prefix="notirouter-compare-", dir=parent) as name:
        yield Path(name)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    """Run the groups against one set of loopback peers; the results document."""
    peers = LoopbackPeers(api_key=API_KEY, api_latency_ms=0)
    bench = Bench(args, peers)
    try:
        await bench.run()
    finally:
        await bench.session.close()
        peers.close()
    return {"rows": bench.rows, "skipped": bench.skipped}


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run, write the JSON, print the table; 0 unless an event was refused, lost or doubled."""
    given = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(given)
    args.postgres_url = (
        args.postgres_url or os.environ.get("NOTIROUTER_TEST_POSTGRES_URL") or LOCAL_POSTGRES
    )
    # SIGTERM unwinds like ^C, so every system started so far is stopped on the way out.
    signal.signal(signal.SIGTERM, _interrupt)
    started_at = datetime.now(UTC)
    began = time.monotonic()
    machine = machine_facts(args.workdir)
    try:
        try:
            import uvloop
        except ImportError:
            outcome = asyncio.run(main_async(args))
        else:
            outcome = uvloop.run(main_async(args))
    except HarnessError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    sizes = args.sizes
    results: dict[str, Any] = {
        "command": shlex.join(["python", "bench/compare.py", *given]),
        "started_at": started_at.isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - began, 1),
        "machine": {**machine, "load_average_end": round(os.getloadavg()[0], 2)},
        "sizes": asdict(sizes),
        "processes": args.processes,
        **outcome,
    }
    results["targets"] = compare_report.targets(results)
    results["ok"] = all(row["ok"] for row in results["rows"])
    output = args.output or (
        BENCH_DIR / "results" / f"{started_at.strftime('%Y%m%dT%H%M%SZ')}.json"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    compare_report.print_report(results)
    print(f"\nresults: {output} ({results['duration_s']:.0f} s)")
    return 0 if results["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
