"""The ``notirouter`` command line (DESIGN.md §3.1).

Exit codes: 0 success; 1 invalid config or failure to start; 2 usage error; 3 unreadable or
invalid event file (``trace``: no such event; ``silence expire``: no such silence); 4 a sink
did not accept a notification (``send``, ``test-sink``); 5 no running process found to
signal (``reload``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from notirouter import __version__
from notirouter.cli import (
    actions,
    check,
    dead,
    migrate,
    plugins,
    reload,
    route,
    send,
    serve,
    silence,
    status,
    test_sink,
    trace,
    worker,
)
from notirouter.cli.common import EXIT_USAGE


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="notirouter",
        description="Route Sekoia.io security events to Teams, Slack, Mattermost, email and more.",
    )
    parser.add_argument("--version", action="version", version=f"notirouter {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve.add_commands(commands)
    check.add_commands(commands)
    route.add_commands(commands)
    send.add_commands(commands)
    test_sink.add_commands(commands)
    plugins.add_commands(commands)
    dead.add_commands(commands)
    worker.add_commands(commands)
    migrate.add_commands(commands)
    status.add_commands(commands)
    trace.add_commands(commands)
    actions.add_commands(commands)
    reload.add_commands(commands)
    silence.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    code: int = handler(args)
    return code
