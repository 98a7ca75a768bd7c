"""``notirouter route``: a dry run of routing for one event file; sends nothing."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from notirouter.cli.common import (
    EXIT_OK,
    add_event_arguments,
    load,
    parse_event,
    print_json,
    run_command,
)
from notirouter.cli.decisions import decision_lines
from notirouter.cli.route_gates import GateReport, gate_report
from notirouter.logs import configure_logging
from notirouter.printable import inert
from notirouter.redaction import Redactor
from notirouter.routing.holding import dispose
from notirouter.routing.pipeline import Routed
from notirouter.routing.record import decisions_of, gate_lines, routing_data
from notirouter.routing.silences import ActiveSilences, Silence
from notirouter.routing.table import Route, RouteDecision
from notirouter.runtime import Runtime


def add_commands(commands: Any) -> None:
    """Register the command."""
    route = commands.add_parser(
        "route",
        help="dry run: which routes match an event and what each sink would send",
        description="Show which routes match EVENT.json and why, and each sink's rendered "
        "payload. Sends nothing; calls enrichers only with --enrich.",
    )
    add_event_arguments(route)
    route.add_argument(
        "--enrich", action="store_true", help="call the enrichers (read-only API calls)"
    )
    route.add_argument("--json", action="store_true", help="machine-readable output")
    route.set_defaults(handler=run_command(route_command))


def route_command(args: argparse.Namespace) -> int:
    """Explain routing for one event; send nothing."""
    config = load(args)
    configure_logging("WARNING", config.secrets)
    runtime = Runtime(config)
    event = parse_event(runtime, args)

    async def run() -> tuple[Routed, GateReport, Silence | None, str | None]:
        await runtime.open_plugins()
        try:
            routed = await runtime.pipeline.route(event, enrich=args.enrich)
        finally:
            await runtime.close_plugins()
        gates = await gate_report(runtime.config.app.queue, routed)
        silence, unread = await _silence_for(runtime, routed)
        return routed, gates, silence, unread

    routed, gates, silence, unread = asyncio.run(run())
    report = _route_report(runtime, routed, enriched=args.enrich)
    _add_gates(report, gates)
    _add_holds(report, routed, silence, unread)
    if args.json:
        print_json(report)
    else:
        _print_route_report(report)
    return EXIT_OK


def _route_report(runtime: Runtime, routed: Routed, *, enriched: bool) -> dict[str, Any]:
    candidates = {d.route.name: d for d in routed.decisions}
    # What serve would store with the event: each route's decisions, whatever their kind.
    record = routing_data(routed)
    recorded = {entry["route"]: decisions_of(entry) for entry in record["routes"]}
    routes = []
    for route in runtime.config.routes.routes:
        decision = candidates.get(route.name)
        if decision is None:
            reason = (
                route.mismatch(routed.event.type, routed.event.action)
                or route.community_mismatch(routed.community_uuid, routed.community)
                or "not a candidate"
            )
            routes.append({"name": route.name, "matched": False, "reason": reason})
        else:
            entry: dict[str, Any] = {
                "name": route.name,
                "matched": decision.matched,
                "reason": decision.reason,
            }
            hint = None if enriched else _enrichment_hint(route, decision)
            if hint:
                entry["hint"] = hint
            if recorded.get(route.name):
                entry["decisions"] = recorded[route.name]
            routes.append(entry)
    deliveries = []
    for route, message in routed.messages:
        for sink_name in route.sinks:
            sink = runtime.sinks[sink_name]
            try:
                payload = sink.render(message)
            except Exception as exc:
                payload = {"render error": f"{type(exc).__name__}: {exc}"}
            deliveries.append(
                {"route": route.name, "sink": sink_name, "type": sink.type_name, "payload": payload}
            )
    return {
        "event": {"type": routed.event.type, "action": routed.event.action},
        "community": record.get("community"),
        "enriched": enriched,
        "enrichment_errors": routed.enrichment_errors,
        "routes": routes,
        "deliveries": deliveries,
    }


def _add_gates(report: dict[str, Any], gates: GateReport) -> None:
    """Each gated route's decision against the stored state, and the deliveries it holds."""
    by_name = {route["name"]: route for route in report["routes"]}
    for name, record in gates.records.items():
        by_name[name].update(record)
    for name in gates.routes:
        if gates.problem is not None:
            by_name[name]["gate_state"] = gates.problem
    for delivery in report["deliveries"]:
        withheld = gates.withheld.get(delivery["route"])
        if withheld:
            delivery["withheld"] = withheld


async def _silence_for(runtime: Runtime, routed: Routed) -> tuple[Silence | None, str | None]:
    """The silence that would apply, read from the configured queue when it can be opened
    (never created); or why the silences could not be read."""
    if not routed.messages:
        return None, "no route matched"
    silences = ActiveSilences(runtime.queue.silences)
    try:
        await runtime.queue.open(create=False)
        try:
            await runtime.queue.silences().listing()  # says why, if the queue cannot be read
            await silences.refresh()
        finally:
            await runtime.queue.close()
    except Exception as exc:  # a dry run still answers without its queue
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return None, Redactor(runtime.config.secrets)(reason)
    return silences.find(routed.variables, time.time()), None


def _add_holds(
    report: dict[str, Any], routed: Routed, silence: Silence | None, unread: str | None
) -> None:
    """Each matched route's silence and window decision, as serve would make them now."""
    now = time.time()
    by_name = {entry["name"]: entry for entry in report["routes"]}
    for route, _ in routed.messages:
        by_name[route.name].update(dispose(route, routed.variables, silence, now).record())
    report["silences"] = "not read: " + unread if unread else "read from the queue"
    if silence is not None:
        report["deliveries"] = []  # a silenced event is recorded, not sent


def _enrichment_hint(route: Route, decision: RouteDecision) -> str | None:
    """Why a ``when`` that did not match in a dry run without ``--enrich`` may yet match.

    Without ``--enrich`` the route's enrichers are not called, so a ``when`` reading what they
    fetch (``alert.urgency...``) fails or is false here while it would match in ``serve``.
    """
    if decision.matched or route.when is None or not route.enrich:
        return None
    if not decision.reason.startswith("when "):
        return None  # not evaluated (an earlier route matched): enrichment would not change it
    names = ", ".join(route.enrich)
    return (
        f"this when needs enrichment (enrich: {names}), not called in this dry run: "
        "run again with --enrich to call the enrichers (read-only API calls)"
    )


def _print_route_report(report: dict[str, Any]) -> None:
    event = report["event"]
    print(f"event: type={event['type']} action={event['action']}")
    community = report.get("community")
    if community:
        print(f"community: {inert(str(community['name']))} ({inert(str(community['uuid']))})")
    if not report["enriched"]:
        print("enrichment: not called (use --enrich to call the enrichers)")
    for name, reason in report["enrichment_errors"].items():
        print(f"enrichment: {name} failed: {reason}")
    print("routes:")
    for route in report["routes"]:
        mark = "MATCH" if route["matched"] else "no   "
        print(f"  {mark} {route['name']}: {route['reason']}")
        if "hint" in route:
            print(f"        hint: {route['hint']}")
        if "gate_state" in route:
            print(f"        {route['gate_state']}")
        for line in gate_lines(route):
            print(f"        {line}")
        if "silence" in route:
            silence = route["silence"]
            print(
                f"        silenced by {silence['id']} until {silence['until']} "
                f"({' '.join(silence['matchers'])}): {inert(silence['comment'])}"
            )
        if "window" in route:
            print(f"        window {route['window']['name']}: {route['window']['reason']}")
        for line in decision_lines(route.get("decisions") or {}):
            print(f"        {inert(line)}")
    matched = any(route["matched"] for route in report["routes"])
    if matched and report["silences"].startswith("not read"):
        print(f"silences: {report['silences']}")
    if not report["deliveries"]:
        print("no sink would be called")
    for delivery in report["deliveries"]:
        print(f"\nsink {delivery['sink']} ({delivery['type']}) via route {delivery['route']}:")
        if "withheld" in delivery:
            print(f"  (not sent now: {delivery['withheld']})")
        payload = delivery["payload"]
        text = (
            payload
            if isinstance(payload, str)
            else json.dumps(payload, indent=2, ensure_ascii=False)
        )
        print("  " + text.replace("\n", "\n  "))
