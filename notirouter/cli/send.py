"""``notirouter send``: one event through the whole pipeline now, one attempt per sink."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from notirouter.api.sink import Outcome
from notirouter.cli.common import (
    EXIT_OK,
    EXIT_UNDELIVERED,
    add_event_arguments,
    load,
    parse_event,
    run_command,
)
from notirouter.delivery.dispatcher import attempt
from notirouter.logs import configure_logging
from notirouter.redaction import Redactor
from notirouter.runtime import Runtime


def add_commands(commands: Any) -> None:
    """Register the command."""
    send = commands.add_parser(
        "send",
        help="run one event through the whole pipeline now and report each sink's result",
        description="Enrich, route, format and deliver EVENT.json now (one attempt per sink, "
        "not queued). Exit 4 if any sink did not accept it.",
    )
    add_event_arguments(send)
    send.set_defaults(handler=run_command(send_command))


def send_command(args: argparse.Namespace) -> int:
    """Deliver one event now, without the queue; report each sink's result."""
    config = load(args)
    configure_logging("WARNING", config.secrets)
    runtime = Runtime(config)
    event = parse_event(runtime, args)

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
