"""``notirouter route`` (dry run), ``send`` and ``test-sink``."""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from notirouter.cli.common import (
    EXIT_INPUT,
    EXIT_OK,
    EXIT_UNDELIVERED,
    CommandFailed,
    add_config_option,
    load,
    print_json,
    read_event_file,
    run_command,
)
from notirouter.delivery import attempt
from notirouter.events import Event
from notirouter.logs import Redactor, configure_logging
from notirouter.message import Fact, Message, Severity
from notirouter.pipeline import Routed
from notirouter.routing import Route, RouteDecision
from notirouter.runtime import Runtime
from notirouter.sink import Outcome


def add_commands(commands: Any) -> None:
    """Register ``route``, ``send`` and ``test-sink``."""
    route = commands.add_parser(
        "route",
        help="dry run: which routes match an event and what each sink would send",
        description="Show which routes match EVENT.json and why, and each sink's rendered "
        "payload. Sends nothing; calls enrichers only with --enrich.",
    )
    _event_arguments(route)
    route.add_argument(
        "--enrich", action="store_true", help="call the enrichers (read-only API calls)"
    )
    route.add_argument("--json", action="store_true", help="machine-readable output")
    route.set_defaults(handler=run_command(route_command))

    send = commands.add_parser(
        "send",
        help="run one event through the whole pipeline now and report each sink's result",
        description="Enrich, route, format and deliver EVENT.json now (one attempt per sink, "
        "not queued). Exit 4 if any sink did not accept it.",
    )
    _event_arguments(send)
    send.set_defaults(handler=run_command(send_command))

    test_sink = commands.add_parser(
        "test-sink",
        help="send a clearly labelled test notification to one sink",
        description="Send a test notification to SINK and report the result (exit 4 on failure).",
    )
    add_config_option(test_sink)
    test_sink.add_argument("sink", metavar="SINK", help="sink name from the config")
    test_sink.set_defaults(handler=run_command(test_sink_command))


def _event_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument("event", metavar="EVENT.json", help="event file (- for stdin)")
    parser.add_argument(
        "--source", help="source type to parse the event with (default: the first hook's)"
    )


def _parse(runtime: Runtime, args: argparse.Namespace) -> Event:
    payload = read_event_file(args.event)
    hooks = runtime.config.app.hooks
    source = args.source or (hooks[0].source if hooks else "sekoia")
    try:
        return runtime.pipeline.parse(source, payload)
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(str(p) for p in e['loc']) or '(body)'}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)
        ]
        raise CommandFailed(
            f"{args.event}: invalid event:\n" + "\n".join(lines), EXIT_INPUT
        ) from None
    except Exception as exc:
        raise CommandFailed(f"{args.event}: {exc}", EXIT_INPUT) from None


def route_command(args: argparse.Namespace) -> int:
    """Explain routing for one event; send nothing."""
    config = load(args)
    configure_logging("WARNING", config.secrets)
    runtime = Runtime(config)
    event = _parse(runtime, args)

    async def run() -> Routed:
        await runtime.open_plugins()
        try:
            return await runtime.pipeline.route(event, enrich=args.enrich)
        finally:
            await runtime.close_plugins()

    routed = asyncio.run(run())
    report = _route_report(runtime, routed, enriched=args.enrich)
    if args.json:
        print_json(report)
    else:
        _print_route_report(report)
    return EXIT_OK


def _route_report(runtime: Runtime, routed: Routed, *, enriched: bool) -> dict[str, Any]:
    candidates = {d.route.name: d for d in routed.decisions}
    routes = []
    for route in runtime.config.routes.routes:
        decision = candidates.get(route.name)
        if decision is None:
            reason = route.mismatch(routed.event.type, routed.event.action) or "not a candidate"
            routes.append({"name": route.name, "matched": False, "reason": reason})
        else:
            entry = {"name": route.name, "matched": decision.matched, "reason": decision.reason}
            hint = None if enriched else _enrichment_hint(route, decision)
            if hint:
                entry["hint"] = hint
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
        "enriched": enriched,
        "enrichment_errors": routed.enrichment_errors,
        "routes": routes,
        "deliveries": deliveries,
    }


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
    if not report["deliveries"]:
        print("no sink would be called")
    for delivery in report["deliveries"]:
        print(f"\nsink {delivery['sink']} ({delivery['type']}) via route {delivery['route']}:")
        payload = delivery["payload"]
        text = (
            payload
            if isinstance(payload, str)
            else json.dumps(payload, indent=2, ensure_ascii=False)
        )
        print("  " + text.replace("\n", "\n  "))


def send_command(args: argparse.Namespace) -> int:
    """Deliver one event now, without the queue; report each sink's result."""
    config = load(args)
    configure_logging("WARNING", config.secrets)
    runtime = Runtime(config)
    event = _parse(runtime, args)

    async def run() -> list[tuple[str, str, Any]]:
        await runtime.open_plugins()
        try:
            routed = await runtime.pipeline.route(event)
            for name, reason in routed.enrichment_errors.items():
                print(f"enrichment: {name} failed: {reason}")
            redact = Redactor(runtime.config.secrets)
            jobs = [
                (route.name, sink, message)
                for route, message in routed.messages
                for sink in route.sinks
            ]
            results = await asyncio.gather(
                *(attempt(runtime.sinks[s], m, redact) for _, s, m in jobs)
            )
            return [
                (route, sink, result)
                for (route, sink, _), result in zip(jobs, results, strict=True)
            ]
        finally:
            await runtime.close_plugins()

    outcomes = asyncio.run(run())
    if not outcomes:
        print(f"no route matched {event.type}/{event.action}: nothing sent")
        return EXIT_OK
    failed = 0
    for route, sink, result in outcomes:
        failed += result.outcome is not Outcome.DELIVERED
        detail = f": {result.detail}" if result.detail else ""
        print(f"{sink} (route {route}): {result.outcome.value}{detail}")
    return EXIT_UNDELIVERED if failed else EXIT_OK


def test_sink_command(args: argparse.Namespace) -> int:
    """Send a test notification to one sink."""
    config = load(args)
    configure_logging("WARNING", config.secrets)
    runtime = Runtime(config)
    sink = runtime.sinks.get(args.sink)
    if sink is None:
        known = ", ".join(sorted(runtime.sinks)) or "none"
        raise CommandFailed(f"no sink named {args.sink!r} (defined: {known})", EXIT_INPUT)
    now = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    message = Message(
        title="notirouter test notification",
        text=f"This is a test sent by notirouter to the sink {args.sink!r}. No action is needed.",
        severity=Severity.INFO,
        facts=(Fact(name="Sink", value=args.sink), Fact(name="Sent at", value=now)),
        route="test-sink",
    )

    async def run() -> Any:
        await runtime.open_plugins()
        try:
            return await attempt(sink, message, Redactor(runtime.config.secrets))
        finally:
            await runtime.close_plugins()

    result = asyncio.run(run())
    detail = f": {result.detail}" if result.detail else ""
    print(f"{args.sink}: {result.outcome.value}{detail}")
    return EXIT_OK if result.outcome is Outcome.DELIVERED else EXIT_UNDELIVERED
