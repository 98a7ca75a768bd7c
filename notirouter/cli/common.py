"""Helpers shared by the command-line commands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from notirouter.api.events import Event
from notirouter.api.manager import PluginError
from notirouter.cli.hints import missing_config_hint
from notirouter.config.errors import ConfigError
from notirouter.config.loader import LoadedConfig, default_config_path, load_config
from notirouter.ingest.payload import PayloadRefused, load_payload
from notirouter.printable import inert_json

if TYPE_CHECKING:
    from notirouter.runtime import Runtime

EXIT_OK = 0
EXIT_CONFIG = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_UNDELIVERED = 4


class CommandFailed(Exception):
    """Stop a command with a message on stderr and an exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """``-c/--config`` with the documented default."""
    parser.add_argument(
        "-c",
        "--config",
        default=None,
        metavar="CONFIG",
        help="config file (default: $NOTIROUTER_CONFIG, else ./notirouter.yaml)",
    )


def load(args: argparse.Namespace) -> LoadedConfig:
    """Load the config named by ``args``; print every problem and fail with exit code 1."""
    path = args.config or default_config_path()
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        hint = missing_config_hint(path)
        if hint:
            print(hint, file=sys.stderr)
        count = len(exc.problems)
        raise CommandFailed(
            f"{count} problem{'s' if count != 1 else ''} in {path}", EXIT_CONFIG
        ) from None
    except PluginError as exc:
        raise CommandFailed(f"plugin error: {exc}", EXIT_CONFIG) from None


def read_event_file(path: str) -> dict[str, Any]:
    """A JSON object from ``path`` (``-`` for stdin); fail with exit code 3 otherwise."""
    try:
        body = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise CommandFailed(f"{path}: cannot read: {exc.strerror}", EXIT_INPUT) from None
    try:
        return load_payload(body)  # the receiver's rules: what it would refuse, this refuses
    except PayloadRefused as exc:
        raise CommandFailed(f"{path}: {exc.reason}", EXIT_INPUT) from None


def run_command(function: Any) -> Any:
    """Decorator: turn :class:`CommandFailed` into a message and an exit code."""

    def wrapper(args: argparse.Namespace) -> int:
        try:
            code: int = function(args)
        except CommandFailed as exc:
            print(f"notirouter: {exc}", file=sys.stderr)
            return exc.code
        except KeyboardInterrupt:
            return 130
        return code

    wrapper.__doc__ = function.__doc__
    return wrapper


def print_json(value: Any) -> None:
    """Pretty JSON on stdout; control, bidi and surrogate characters as JSON escapes."""
    print(inert_json(json.dumps(value, indent=2, ensure_ascii=False, default=str)))


def add_event_arguments(parser: argparse.ArgumentParser) -> None:
    """The config option, the event file and ``--source``, for commands that take an event."""
    add_config_option(parser)
    parser.add_argument("event", metavar="EVENT.json", help="event file (- for stdin)")
    parser.add_argument(
        "--source", help="source type to parse the event with (default: the first hook's)"
    )


def parse_event(runtime: Runtime, args: argparse.Namespace) -> Event:
    """The event file of ``args``, parsed by its source; a clear error when it is invalid."""
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
