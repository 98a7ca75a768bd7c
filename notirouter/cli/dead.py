"""``notirouter dead list / show / replay / purge``: the dead letters in the queue."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from notirouter.cli.common import (
    EXIT_INPUT,
    EXIT_OK,
    EXIT_USAGE,
    CommandFailed,
    add_config_option,
    load,
    print_json,
    run_command,
)
from notirouter.config.models import parse_duration
from notirouter.queue.sqlite import SqliteQueue

T = TypeVar("T")
REPLAY_CHUNK = 500


def add_commands(commands: Any) -> None:
    """Register ``dead`` and its subcommands."""
    dead = commands.add_parser(
        "dead", help="inspect, replay or purge dead letters", description="Dead letters."
    )
    sub = dead.add_subparsers(dest="dead_command", metavar="ACTION")
    dead.set_defaults(handler=lambda args: (dead.print_help(sys.stderr), EXIT_USAGE)[1])

    listing = sub.add_parser("list", help="list dead letters", description="List dead letters.")
    add_config_option(listing)
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=run_command(list_command))

    show = sub.add_parser("show", help="show one dead letter", description="Show one dead letter.")
    add_config_option(show)
    show.add_argument("id", type=int, metavar="ID")
    show.set_defaults(handler=run_command(show_command))

    replay = sub.add_parser(
        "replay",
        help="queue dead letters again",
        description="Queue dead letters for delivery again.",
    )
    add_config_option(replay)
    replay.add_argument("ids", type=int, nargs="*", metavar="ID")
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


def _with_queue(args: argparse.Namespace, work: Callable[[SqliteQueue], Awaitable[T]]) -> T:
    config = load(args)

    async def run() -> T:
        queue = SqliteQueue(config.app.queue.path, synchronous=config.app.queue.synchronous)
        await queue.open()
        try:
            return await work(queue)
        finally:
            await queue.close()

    return asyncio.run(run())


def _time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def list_command(args: argparse.Namespace) -> int:
    """One line per dead letter."""
    letters = _with_queue(args, lambda q: q.dead_letters())
    if args.json:
        print_json(
            [
                {
                    "id": d.id,
                    "event_id": d.event_id,
                    "route": d.route,
                    "sink": d.sink,
                    "attempts": d.attempts,
                    "died_at": _time(d.finished_at),
                    "error": d.last_error,
                }
                for d in letters
            ]
        )
        return EXIT_OK
    if not letters:
        print("no dead letters")
    for d in letters:
        print(
            f"{d.id}\t{_time(d.finished_at)}\t{d.sink}\t{d.route}\tattempts={d.attempts}\t{d.last_error}"
        )
    return EXIT_OK


def show_command(args: argparse.Namespace) -> int:
    """Everything about one dead letter, including the message and the event body."""
    letters = _with_queue(args, lambda q: q.dead_letters([args.id]))
    if not letters:
        raise CommandFailed(f"no dead letter with id {args.id}", EXIT_INPUT)
    d = letters[0]
    body = d.event_body.decode("utf-8", errors="replace") if d.event_body is not None else None
    import json

    print_json(
        {
            "id": d.id,
            "event_id": d.event_id,
            "route": d.route,
            "sink": d.sink,
            "attempts": d.attempts,
            "created_at": _time(d.created_at),
            "died_at": _time(d.finished_at),
            "error": d.last_error,
            "message": json.loads(d.message_json),
            "event": json.loads(body) if body else None,
        }
    )
    return EXIT_OK


def replay_command(args: argparse.Namespace) -> int:
    """Make dead letters pending again, showing progress for large replays."""
    if not args.all and not args.ids:
        raise CommandFailed("give dead letter ids, or --all", EXIT_USAGE)

    async def work(queue: SqliteQueue) -> int:
        ids = [d.id for d in await queue.dead_letters()] if args.all else list(args.ids)
        done = 0
        for start in range(0, len(ids), REPLAY_CHUNK):
            done += len(await queue.replay(ids[start : start + REPLAY_CHUNK]))
            if len(ids) > REPLAY_CHUNK:
                print(f"replayed {done}/{len(ids)}", file=sys.stderr)
        return done

    replayed = _with_queue(args, work)
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
    purged = _with_queue(args, lambda q: q.purge_dead(older_than))
    print(f"{purged} dead letter{'s' if purged != 1 else ''} deleted")
    return EXIT_OK
