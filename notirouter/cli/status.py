"""``notirouter status``: what the queue holds now, per state and per sink.

Everything shown is read from the queue, on either backend, so ``status`` works while
``serve`` runs, after it stopped, and from another machine (PostgreSQL); it needs no running
server and no endpoint. A sink's pause (``Retry-After``) is recorded with the attempt that
caused it (and, on PostgreSQL, in the gate row every process shares). What lives only in a
serving process's memory (the enrichment cache, the Sekoia.io circuit breaker, each sink's
attempts in flight and health) each process writes to the queue every
``server.status_interval`` (notirouter/operations/process_state.py): ``processes`` lists the
live ones, ``stopped_reporting`` those whose last report expired (killed, or hung). Storm
mode is in the queue: each sink's state and totals (``storm``).

Exit codes: 0 shown; 1 the config or the queue cannot be read; 2 usage error.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from notirouter.cli.common import EXIT_OK, add_config_option, print_json, run_command
from notirouter.cli.queue_access import timestamp, with_queue
from notirouter.printable import inert
from notirouter.queue.inspection_records import ProcessReport, QueueSnapshot
from notirouter.queue.protocol import Queue

SINK_TABLE = (
    ("SINK", "sink"),
    ("PENDING", "pending"),
    ("DUE", "due"),
    ("DONE", "done"),
    ("DEAD", "dead"),
    ("NEXT DUE", "next_due_at"),
    ("PAUSED UNTIL", "paused_until"),
    ("LAST ERROR AT", "last_error_at"),
    ("LAST ERROR", "last_error"),
)


def add_commands(commands: Any) -> None:
    """Register ``status``."""
    parser = commands.add_parser(
        "status",
        help="show the queue: depth by state, per-sink backlog, pauses, dead letters, errors",
        description="Show what the queue holds now: events and deliveries by state, each "
        "sink's backlog, its Retry-After pause and last error (redacted when stored), the "
        "oldest delivery waiting, and dead letters. Reads the queue only (no server needed). "
        "Exit codes: 0 shown, 1 the config or queue cannot be read, 2 usage error.",
    )
    add_config_option(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=run_command(status_command))


def status_command(args: argparse.Namespace) -> int:
    """Print the queue's status."""

    async def work(queue: Queue) -> dict[str, Any]:
        snapshot = await queue.inspection().snapshot()
        reports = await queue.process_states().reports()
        return status_view(queue.backend, snapshot, reports)

    view = with_queue(args, work)
    if args.json:
        print_json(view)
    else:
        print_status(view)
    return EXIT_OK


def status_view(
    backend: str, snapshot: QueueSnapshot, reports: list[ProcessReport] | None = None
) -> dict[str, Any]:
    """The status as plain data (what ``--json`` prints)."""
    live = [r for r in reports or [] if r.expires_at > snapshot.taken_at]
    stopped = [r for r in reports or [] if r.expires_at <= snapshot.taken_at]
    oldest = snapshot.oldest_due
    return {
        "backend": backend,
        "taken_at": timestamp(snapshot.taken_at),
        "events": snapshot.events,
        "deliveries": snapshot.deliveries,
        "dead_letters": {
            "deliveries": snapshot.deliveries.get("dead", 0),
            "events": snapshot.events.get("failed", 0),
        },
        "oldest_pending_event_received_at": timestamp(snapshot.oldest_pending_event_at),
        "oldest_due_delivery": None
        if oldest is None
        else {
            "id": oldest.delivery_id,
            "event_id": oldest.event_id,
            "sink": oldest.sink,
            "route": oldest.route,
            "created_at": timestamp(oldest.created_at),
            "due_at": timestamp(oldest.due_at),
            "waiting_seconds": round(snapshot.taken_at - oldest.created_at, 3),
            "attempts": oldest.attempts,
        },
        "sinks": [
            {
                "sink": sink.sink,
                "pending": sink.states.get("pending", 0),
                "due": sink.due,
                "done": sink.states.get("done", 0),
                "dead": sink.states.get("dead", 0),
                "next_due_at": timestamp(sink.next_due_at),
                "paused_until": timestamp(sink.paused_until),
                "last_error_at": timestamp(sink.last_error_at),
                "last_outcome": sink.last_outcome,
                "last_error": sink.last_error,
            }
            for sink in snapshot.sinks
        ],
        # What each live serving process holds in memory, as it last reported it.
        "processes": [process_view(report, snapshot.taken_at) for report in live],
        "stopped_reporting": [
            {
                "id": r.process_id,
                "host": r.host,
                "pid": r.pid,
                "reported_at": timestamp(r.reported_at),
            }
            for r in stopped
        ],
        # Storm mode per sink (README "Storm mode"): sinks that never stormed are absent.
        "storm": [
            {
                "sink": storm.sink,
                "active": storm.active,
                "since": timestamp(storm.since) if storm.active else None,
                "last_ended_at": timestamp(storm.ended_at),
                "storms": storm.storms,
                "folded": storm.folded,
                "digests": storm.digests,
            }
            for storm in snapshot.storms
        ],
    }


def process_view(report: ProcessReport, now: float) -> dict[str, Any]:
    """One process's report: who, when, and its sinks' and enrichers' in-memory state."""
    state: dict[str, Any] = json.loads(report.state)
    sinks = state.get("sinks", {})
    for sink in sinks.values():
        sink["paused_until"] = timestamp(sink.get("paused_until"))
    return {
        "id": report.process_id,
        "host": report.host,
        "pid": report.pid,
        "started_at": timestamp(report.started_at),
        "reported_at": timestamp(report.reported_at),
        "report_age_seconds": round(max(0.0, now - report.reported_at), 3),
        "workers": bool(state.get("workers")),
        "draining": bool(state.get("draining")),
        "sinks": sinks,
        "enrichers": state.get("enrichers", {}),
    }


def print_status(view: dict[str, Any]) -> None:
    """The status for a terminal: totals, then a tab-separated sink table under its header."""
    print(f"queue ({view['backend']}) at {view['taken_at']}")
    print("events:     " + _counts(view["events"]))
    print("deliveries: " + _counts(view["deliveries"]))
    dead = view["dead_letters"]
    print(f"dead letters: {dead['deliveries']} deliveries, {dead['events']} events not routed")
    if view["oldest_pending_event_received_at"]:
        print(f"oldest event waiting to be routed: {view['oldest_pending_event_received_at']}")
    oldest = view["oldest_due_delivery"]
    if oldest is not None:
        print(
            f"oldest due delivery: {oldest['id']} (event {oldest['event_id']}, sink "
            f"{inert(oldest['sink'])}), created {oldest['created_at']}, waiting "
            f"{oldest['waiting_seconds']:.1f}s after {oldest['attempts']} attempts"
        )
    else:
        print("oldest due delivery: none")
    print()
    print("\t".join(title for title, _ in SINK_TABLE))
    for sink in view["sinks"]:
        print("\t".join(inert(_cell(sink[key])) for _, key in SINK_TABLE))
    for storm in view["storm"]:
        state = f"ON since {storm['since']}" if storm["active"] else "off"
        if not storm["active"] and storm["last_ended_at"]:
            state += f" (last ended {storm['last_ended_at']})"
        print(
            f"storm mode: sink {inert(storm['sink'])} {state}; {storm['storms']} storm(s), "
            f"{storm['folded']} deliveries folded into {storm['digests']} digests"
        )
    print()
    print_processes(view["processes"], view["stopped_reporting"])


def print_processes(processes: list[dict[str, Any]], stopped: list[dict[str, Any]]) -> None:
    """Each live process's memory: its sinks and enrichers, one line each."""
    print(f"processes: {len(processes)} live")
    for process in processes:
        role = "routes and delivers" if process["workers"] else "receives only"
        draining = ", draining" if process["draining"] else ""
        print(
            f"process {inert(process['id'])} ({role}{draining}), started "
            f"{process['started_at']}, reported {process['report_age_seconds']:.1f}s ago"
        )
        for name, sink in sorted(process["sinks"].items()):
            paused = sink["paused_until"] or "-"
            print(
                f"  sink {inert(name)}: {sink['in_flight']}/{sink['concurrency']} in flight, "
                f"health {sink['health']} ({sink['consecutive_failures']} failed in a row), "
                f"paused until {paused}" + _plugin(sink["plugin"])
            )
        for name, enricher in sorted(process["enrichers"].items()):
            print(f"  enricher {inert(name)}:" + (_plugin(enricher["plugin"])[1:] or " -"))
    for gone in stopped:
        print(f"stopped reporting: process {inert(gone['id'])}, last report {gone['reported_at']}")


def _plugin(state: dict[str, Any]) -> str:
    """A plugin's own state as ``key=value`` pairs (nested keys joined by dots)."""
    pairs = [f"{inert(key)}={inert(_cell(value))}" for key, value in _flatten(state, "")]
    return ("; " + " ".join(pairs)) if pairs else ""


def _flatten(value: Any, prefix: str) -> list[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        pairs: list[tuple[str, Any]] = []
        for key, inner in value.items():
            pairs += _flatten(inner, f"{prefix}{key}.")
        return pairs
    return [(prefix[:-1], value)]


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{state} {count}" for state, count in sorted(counts.items())) or "none"


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)
