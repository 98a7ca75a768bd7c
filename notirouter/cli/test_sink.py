"""``notirouter test-sink``: a clearly labelled test notification to one sink."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from typing import Any

from notirouter.api.message import Fact, Message, Severity
from notirouter.api.sink import Outcome
from notirouter.cli.common import (
    EXIT_INPUT,
    EXIT_OK,
    EXIT_UNDELIVERED,
    CommandFailed,
    add_config_option,
    load,
    run_command,
)
from notirouter.delivery.dispatcher import attempt
from notirouter.logs import configure_logging
from notirouter.redaction import Redactor
from notirouter.runtime import Runtime


def add_commands(commands: Any) -> None:
    """Register the command."""
    test_sink = commands.add_parser(
        "test-sink",
        help="send a clearly labelled test notification to one sink",
        description="Send a test notification to SINK and report the result (exit 4 on failure).",
    )
    add_config_option(test_sink)
    test_sink.add_argument("sink", metavar="SINK", help="sink name from the config")
    test_sink.set_defaults(handler=run_command(test_sink_command))


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
