"""``notirouter actions``: the chat actions taken, who did what to which alert, and the answer.

Read from the queue (either backend), like ``status``: each click's record, as the interaction
worker left it (``pending`` while it is being tried). Kept for ``queue.retention``.

Exit codes: 0 shown; 1 the config or the queue cannot be read; 2 usage error.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from notirouter.cli.common import EXIT_OK, add_config_option, print_json, run_command
from notirouter.cli.queue_access import timestamp, with_queue
from notirouter.printable import inert
from notirouter.queue.protocol import Queue


def add_commands(commands: Any) -> None:
    """Register ``actions``."""
    parser = commands.add_parser(
        "actions",
        help="list chat actions (buttons clicked): who, what, when, Sekoia.io's answer",
        description="List the chat actions received (Acknowledge, Reject, Comment clicks), "
        "oldest first, with who clicked, the alert, when, the outcome and the service's answer. "
        "Reads the queue only. Exit codes: 0 shown, 1 the config or queue cannot be read.",
    )
    add_config_option(parser)
    parser.add_argument("--sink", help="only the clicks on this sink's messages")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=run_command(actions_command))


def actions_command(args: argparse.Namespace) -> int:
    """Print the recorded chat actions."""

    async def work(queue: Queue) -> list[dict[str, Any]]:
        return [
            action_view(id_, sink, state, result)
            for id_, sink, state, result in await queue.interactions().results(args.sink)
        ]

    views = with_queue(args, work)
    if args.json:
        print_json(views)
        return EXIT_OK
    for view in views:
        who = view["name"] or view["who"]
        print(
            inert(
                f"{view['id']} {view['when'] or '-'} {view['sink']}: {who} {view['what']}"
                f" alert {view['alert']}: {view['state']}: {view['outcome']}"
                + (f": {view['answer']}" if view["answer"] else "")
            )
        )
    return EXIT_OK


def action_view(id_: int, sink: str, state: str, result: str) -> dict[str, Any]:
    """One click's record as plain data (what ``--json`` prints)."""
    record: dict[str, Any] = json.loads(result) if result else {}
    when = record.get("when")
    return {
        "id": id_,
        "sink": sink,
        "state": state,
        "who": record.get("who", ""),
        "name": record.get("name", ""),
        "what": record.get("what", ""),
        "alert": record.get("alert", ""),
        "when": timestamp(when) if isinstance(when, int | float) else None,
        "outcome": record.get("outcome", "not tried yet"),
        "answer": record.get("answer", ""),
        "steps": record.get("steps", {}),
    }
