"""``notirouter dead list / show / replay / purge``: what gave up, and putting it back.

These commands read only the ``queue:`` section of the config (an operator need not have every
sink's secret in the environment) and open the queue without creating it. Failure details were
redacted before they were stored, so what they print carries no configured secret. They quote
services' answers and events' text: control characters are printed escaped, never raw.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from notirouter.cli.common import (
    EXIT_CONFIG,
    EXIT_INPUT,
    EXIT_OK,
    EXIT_USAGE,
    CommandFailed,
    add_config_option,
    print_json,
    run_command,
)
from notirouter.config.errors import ConfigError
from notirouter.config.loader import default_config_path, load_queue_config
from notirouter.config.models import parse_duration
from notirouter.printable import inert
from notirouter.queue.factory import open_queue
from notirouter.queue.protocol import DeadLetterStore as DeadLetters
from notirouter.queue.protocol import QueueUnavailable
from notirouter.queue.records import DeadLetter, FailedEvent

T = TypeVar("T")
REPLAY_CHUNK = 500
EVENT_ID = re.compile(r"^[0-9a-f]{32}$")
# ``dead list`` prints two tab-separated tables, each under its header row: (title, row key).
DELIVERY_TABLE = (
    ("DELIVERY", "id"),
    ("DIED AT", "died_at"),
    ("SINK", "sink"),
    ("ROUTE", "route"),
    ("ATTEMPTS", "attempts"),
    ("EVENT", "event_id"),
    ("ERROR", "error"),
)
EVENT_TABLE = (
    ("EVENT NOT ROUTED", "id"),
    ("RECEIVED AT", "received_at"),
    ("HOOK", "hook"),
    ("ATTEMPTS", "attempts"),
    ("ERROR", "error"),
)


def add_commands(commands: Any) -> None:
    """Register ``dead`` and its subcommands."""
    dead = commands.add_parser(
        "dead",
        help="inspect, replay or purge dead letters",
        description="Dead letters: deliveries a sink refused for good or that outlived "
        "delivery.max_age (integer ids), and events that could not be routed (hex ids).",
    )
    sub = dead.add_subparsers(dest="dead_command", metavar="ACTION")
    dead.set_defaults(handler=lambda args: (dead.print_help(sys.stderr), EXIT_USAGE)[1])

    listing = sub.add_parser(
        "list",
        help="list dead letters",
        description="List dead letters: a tab-separated table of dead deliveries and one of "
        "events that could not be routed, each under a header row (--json: one array).",
    )
    add_config_option(listing)
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.add_argument("--limit", type=int, default=1000, help="at most this many (default 1000)")
    listing.set_defaults(handler=run_command(list_command))

    show = sub.add_parser("show", help="show one dead letter", description="Show one dead letter.")
    add_config_option(show)
    show.add_argument("id", metavar="ID", help="a delivery id (number) or an event id (hex)")
    show.set_defaults(handler=run_command(show_command))

    replay = sub.add_parser(
        "replay", help="queue dead letters again", description="Queue dead letters again."
    )
    add_config_option(replay)
    replay.add_argument("ids", nargs="*", metavar="ID", help="delivery or event ids")
    replay.add_argument("--all", action="store_true", help="replay every dead letter")
    replay.set_defaults(handler=run_command(replay_command))

    purge = sub.add_parser("purge", help="delete dead letters", description="Delete dead letters.")
    add_config_option(purge)
    purge.add_argument(
        "--older-than",
        default="0s",
        metavar="DURATION",
        help="only those dead for longer (e.g. 7d)",
    )
    purge.set_defaults(handler=run_command(purge_command))


def _with_dead_letters(args: argparse.Namespace, work: Callable[[DeadLetters], Awaitable[T]]) -> T:
    path = args.config or default_config_path()
    try:
        settings = load_queue_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        raise CommandFailed(f"cannot read the queue settings in {path}", EXIT_CONFIG) from None

    async def run() -> T:
        queue = await open_queue(settings, create=False)
        try:
            return await work(queue.dead_letters())
        finally:
            await queue.close()

    setting = "queue.url" if settings.backend == "postgres" else "queue.path"
    try:
        return asyncio.run(run())
    except QueueUnavailable as exc:
        raise CommandFailed(f"{exc} ({setting} in {path})", EXIT_CONFIG) from None


def _time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _split_ids(ids: list[str]) -> tuple[list[int], list[str]]:
    deliveries: list[int] = []
    events: list[str] = []
    for raw in ids:
        if raw.isdigit():
            deliveries.append(int(raw))
        elif EVENT_ID.match(raw):
            events.append(raw)
        else:
            raise CommandFailed(f"{raw!r} is neither a delivery id nor an event id", EXIT_USAGE)
    return deliveries, events


def _delivery_row(d: DeadLetter) -> dict[str, Any]:
    return {
        "kind": "delivery",
        "id": d.id,
        "event_id": d.event_id,
        "route": d.route,
        "sink": d.sink,
        "attempts": d.attempts,
        "died_at": _time(d.finished_at),
        "error": d.last_error,
    }


def _event_row(e: FailedEvent) -> dict[str, Any]:
    return {
        "kind": "event",
        "id": e.id,
        "hook": e.hook,
        "attempts": e.attempts,
        "received_at": _time(e.received_at),
        "error": e.last_error,
    }


def _print_table(columns: tuple[tuple[str, str], ...], rows: list[dict[str, Any]]) -> None:
    print("\t".join(title for title, _ in columns))
    for row in rows:
        # Errors quote what services answered: escape controls, so that a tab or a newline
        # keeps one dead letter on one line, and an ANSI escape cannot reach the terminal.
        cells = ("" if row[key] is None else str(row[key]) for _, key in columns)
        print("\t".join(inert(cell) for cell in cells))


def list_command(args: argparse.Namespace) -> int:
    """A table of dead deliveries and one of failed events, each with a header row."""

    async def work(
        dead: DeadLetters,
    ) -> tuple[list[DeadLetter], list[FailedEvent], tuple[int, int]]:
        return await dead.deliveries(limit=args.limit), await dead.events(), await dead.counts()

    letters, failed, (total, _) = _with_dead_letters(args, work)
    rows = [_delivery_row(d) for d in letters] + [_event_row(e) for e in failed]
    if args.json:
        print_json(rows)
        return EXIT_OK
    if not rows:
        print("no dead letters")
    deliveries = [row for row in rows if row["kind"] == "delivery"]
    events = [row for row in rows if row["kind"] == "event"]
    if deliveries:
        _print_table(DELIVERY_TABLE, deliveries)
    if events:
        if deliveries:
            print()
        _print_table(EVENT_TABLE, events)
    if total > len(letters):
        print(f"... {total - len(letters)} more (use --limit)", file=sys.stderr)
    return EXIT_OK


def show_command(args: argparse.Namespace) -> int:
    """Everything about one dead letter, including the message and the event body."""
    deliveries, events = _split_ids([args.id])

    async def work(dead: DeadLetters) -> dict[str, Any] | None:
        if deliveries:
            found = await dead.deliveries(deliveries, bodies=True)
            if not found:
                return None
            d = found[0]
            return {
                **_delivery_row(d),
                "created_at": _time(d.created_at),
                "message": json.loads(d.message_json),
                "event": _json(d.event_body),
            }
        failed = await dead.events(events)
        if not failed:
            return None
        e = failed[0]
        return {**_event_row(e), "source": e.source, "event": _json(e.body)}

    shown = _with_dead_letters(args, work)
    if shown is None:
        raise CommandFailed(f"no dead letter with id {args.id}", EXIT_INPUT)
    print_json(shown)
    return EXIT_OK


def _json(body: bytes | None) -> Any:
    if body is None:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", errors="replace")


def replay_command(args: argparse.Namespace) -> int:
    """Make dead letters pending again, showing progress for large replays."""
    if not args.all and not args.ids:
        raise CommandFailed("give dead letter ids, or --all", EXIT_USAGE)
    wanted_deliveries, wanted_events = _split_ids(args.ids)

    async def work(dead: DeadLetters) -> int:
        deliveries, events = (
            await dead.all_ids() if args.all else (wanted_deliveries, wanted_events)
        )
        done = len(await dead.replay_events(events)) if events else 0
        for start in range(0, len(deliveries), REPLAY_CHUNK):
            done += len(await dead.replay_deliveries(deliveries[start : start + REPLAY_CHUNK]))
            if len(deliveries) > REPLAY_CHUNK:
                print(f"replayed {done}/{len(deliveries) + len(events)}", file=sys.stderr)
        return done

    replayed = _with_dead_letters(args, work)
    print(f"{replayed} dead letter{'s' if replayed != 1 else ''} queued again")
    if not args.all and replayed < len(args.ids):
        print(f"{len(args.ids) - replayed} id(s) were not dead letters", file=sys.stderr)
        return EXIT_INPUT
    return EXIT_OK


def purge_command(args: argparse.Namespace) -> int:
    """Delete dead letters (all, or those older than --older-than)."""
    try:
        older_than = float(parse_duration(args.older_than))
    except ValueError as exc:
        raise CommandFailed(str(exc), EXIT_USAGE) from None
    deliveries, events = _with_dead_letters(args, lambda dead: dead.purge(older_than))
    purged = deliveries + events
    print(f"{purged} dead letter{'s' if purged != 1 else ''} deleted")
    return EXIT_OK
