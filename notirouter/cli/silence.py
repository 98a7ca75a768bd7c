"""``notirouter silence add / list / expire``: mute what matches, for a while, on the record.

A silence is stored in the queue backend, so a running ``serve`` (every process, on
PostgreSQL) applies it within a second. A silenced event is not lost: it is recorded as
silenced, by which silence, in its routing record (``notirouter trace``) and counted in
``/metrics``. Like the ``dead`` commands these read only the ``queue:`` section of the config.

Exit codes: 0 done; 1 the config or the queue cannot be read; 2 usage (a matcher or duration
that does not parse); 3 no such silence (``expire``).
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from typing import Any

from notirouter.cli.common import (
    EXIT_INPUT,
    EXIT_OK,
    EXIT_USAGE,
    CommandFailed,
    add_config_option,
    print_json,
    run_command,
)
from notirouter.cli.queue_access import timestamp, with_queue
from notirouter.config.models import parse_duration
from notirouter.printable import inert
from notirouter.queue.protocol import Queue
from notirouter.queue.records import StoredSilence
from notirouter.routing.silence_matchers import Matcher, MatcherError

MAX_DURATION = 366 * 86_400.0
MAX_COMMENT_CHARS = 1000
TABLE = (
    ("SILENCE", "id"),
    ("STATE", "state"),
    ("ENDS AT", "ends_at"),
    ("AUTHOR", "author"),
    ("MATCHERS", "matchers"),
    ("COMMENT", "comment"),
)


def add_commands(commands: Any) -> None:
    """Register ``silence`` and its subcommands."""
    silence = commands.add_parser(
        "silence",
        help="mute matching events for a while (recorded, never dropped)",
        description="Silences: events matching every --match of an active silence are not "
        "sent; each is recorded as silenced (notirouter trace) and counted in /metrics. "
        "A running serve applies a change within a second.",
        epilog="Exit codes: 0 done; 1 the config or the queue cannot be read; 2 usage (a "
        "matcher or duration that does not parse); 3 no such silence (expire).",
    )
    sub = silence.add_subparsers(dest="silence_command", metavar="ACTION")
    silence.set_defaults(handler=lambda args: (silence.print_help(sys.stderr), EXIT_USAGE)[1])

    add = sub.add_parser(
        "add",
        help="add a silence and print its id",
        description="Add a silence and print its id. Matchers test template variables "
        "(dotted paths, after enrichment): NAME=VALUE, NAME!=VALUE, NAME=~REGEX, NAME!~REGEX; "
        "a regular expression must match the whole value; a missing variable reads as empty.",
    )
    add_config_option(add)
    add.add_argument(
        "--match",
        action="append",
        required=True,
        metavar="MATCHER",
        help="e.g. 'alert.rule.name=~\"PowerShell.*\"' or type=alert (repeat: all must match)",
    )
    add.add_argument(
        "--for", dest="duration", required=True, metavar="DURATION", help="e.g. 30m, 2h, 1d"
    )
    add.add_argument("--comment", required=True, help="why (shown by silence list and trace)")
    add.add_argument("--author", help="who (default: the user running the command)")
    add.add_argument("--json", action="store_true", help="print the silence as JSON")
    add.set_defaults(handler=run_command(add_command))

    listing = sub.add_parser(
        "list",
        help="list active silences",
        description="List silences, a tab-separated table under a header row.",
    )
    add_config_option(listing)
    listing.add_argument("--all", action="store_true", help="include expired silences")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=run_command(list_command))

    expire = sub.add_parser(
        "expire", help="end a silence now", description="End a silence now (it is kept)."
    )
    add_config_option(expire)
    expire.add_argument("id", metavar="ID", help="the id silence add printed")
    expire.add_argument("--json", action="store_true", help="print the silence as JSON")
    expire.set_defaults(handler=run_command(expire_command))


def parse_matchers(texts: list[str]) -> tuple[Matcher, ...]:
    """The ``--match`` values parsed and their regular expressions compiled (exit code 2)."""
    try:
        return tuple(Matcher.parse(text) for text in texts)
    except MatcherError as exc:
        raise CommandFailed(f"--match: {exc}", EXIT_USAGE) from None


def parse_for(text: str) -> float:
    """The ``--for`` duration in seconds (exit code 2)."""
    try:
        seconds = float(parse_duration(text))
    except (ValueError, TypeError):
        raise CommandFailed(
            f"--for: {text!r} is not a duration such as 30m, 2h or 1d", EXIT_USAGE
        ) from None
    if not 0 < seconds <= MAX_DURATION:
        raise CommandFailed("--for: between a second and 366 days", EXIT_USAGE)
    return seconds


def add_command(args: argparse.Namespace) -> int:
    """Store a silence; print its id."""
    matchers = parse_matchers(args.match)
    seconds = parse_for(args.duration)
    comment = " ".join(args.comment.split())
    if not comment or len(comment) > MAX_COMMENT_CHARS:
        raise CommandFailed(f"--comment: 1 to {MAX_COMMENT_CHARS} characters", EXIT_USAGE)
    author = args.author or _user()

    async def work(queue: Queue) -> StoredSilence:
        return await queue.silences().add(
            tuple((m.name, m.operator, m.value) for m in matchers),
            ends_at=time.time() + seconds,
            comment=comment,
            author=author,
        )

    silence = with_queue(args, work)
    if args.json:
        print_json(silence_view(silence, time.time()))
    else:
        print(silence.id)
    return EXIT_OK


def list_command(args: argparse.Namespace) -> int:
    """Print the silences."""

    async def work(queue: Queue) -> list[StoredSilence]:
        return await queue.silences().listing(include_expired=args.all)

    now = time.time()
    views = [silence_view(s, now) for s in with_queue(args, work)]
    if args.json:
        print_json(views)
        return EXIT_OK
    print("\t".join(title for title, _ in TABLE))
    for view in views:
        row = {**view, "matchers": " ".join(view["matchers"])}
        print("\t".join(inert(str(row[key] or "")) for _, key in TABLE))
    return EXIT_OK


def expire_command(args: argparse.Namespace) -> int:
    """End a silence now."""

    async def work(queue: Queue) -> StoredSilence | None:
        return await queue.silences().expire(args.id)

    silence = with_queue(args, work)
    if silence is None:
        raise CommandFailed(
            f"no silence {args.id!r} (see notirouter silence list --all)", EXIT_INPUT
        )
    if args.json:
        print_json(silence_view(silence, time.time()))
    else:
        print(f"silence {silence.id} expired at {timestamp(silence.ends_at)}")
    return EXIT_OK


def silence_view(silence: StoredSilence, now: float) -> dict[str, Any]:
    """One silence as ``list --json`` prints it."""
    return {
        "id": silence.id,
        "state": "active" if silence.active(now) else "expired",
        "matchers": [str(Matcher(*m)) for m in silence.matchers],
        "created_at": timestamp(silence.created_at),
        "ends_at": timestamp(silence.ends_at),
        "expired_by_hand": silence.expired_at is not None,
        "author": silence.author,
        "comment": silence.comment,
    }


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
