"""``notirouter trace``: the whole story of one event, from the stored records.

Received (hook, time, dedupe key), what routing decided per candidate route and why, each
delivery with every attempt (time, outcome, HTTP status, detail, next try), and whether it
became a dead letter. Given a Sekoia.io alert uuid or short id instead of an event id, it tells
the story of every stored event about that alert, oldest first. Details were redacted before
they were stored; text from outside is printed inert.

Exit codes: 0 shown; 1 the config or the queue cannot be read; 2 usage error; 3 no such event
(or no stored event about that alert).
"""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

from notirouter.cli.alert_refs import ALERT_REFERENCE, names_alert
from notirouter.cli.common import (
    EXIT_INPUT,
    EXIT_OK,
    EXIT_USAGE,
    CommandFailed,
    add_config_option,
    print_json,
    run_command,
)
from notirouter.cli.decisions import decision_lines
from notirouter.cli.queue_access import timestamp, with_queue
from notirouter.printable import inert
from notirouter.queue.inspection_records import DeliveryStory, EventStory
from notirouter.queue.protocol import Queue
from notirouter.routing.record import decisions_of, gate_lines

EVENT_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_ALERT_EVENTS = 200
SCAN_LIMIT = 2000


def add_commands(commands: Any) -> None:
    """Register ``trace``."""
    parser = commands.add_parser(
        "trace",
        help="show everything that happened to one event (or to every event of an alert)",
        description="Show the story of one event from the queue: when and how it was "
        "received, each route's decision and why, every delivery with every attempt, and "
        "its dead-letter state. ID is the event id a hook answered with 202, or a Sekoia.io "
        "alert uuid or short id (every stored event about that alert). Exit codes: 0 shown, "
        "1 the config or queue cannot be read, 2 usage error, 3 no such event.",
    )
    add_config_option(parser)
    parser.add_argument("id", metavar="ID", help="event id, or a Sekoia.io alert uuid/short id")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=run_command(trace_command))


def trace_command(args: argparse.Namespace) -> int:
    """Print the story of an event, or of every event about an alert."""
    wanted: str = args.id.strip()
    if not EVENT_ID.match(wanted) and not ALERT_REFERENCE.match(wanted):
        raise CommandFailed(
            f"{inert(wanted)!r} is neither an event id (32 hex digits) nor a Sekoia.io alert "
            "uuid or short id",
            EXIT_USAGE,
        )

    async def work(queue: Queue) -> tuple[list[EventStory], bool]:
        """The stories, and whether ``wanted`` was an event's own id."""
        inspection = queue.inspection()
        if EVENT_ID.match(wanted):
            story = await inspection.event_story(wanted)
            if story is not None:
                return [story], True
        found = await inspection.events_mentioning(wanted, SCAN_LIMIT)
        stories = []
        for event_id, body in found:
            if names_alert(body, wanted):
                story = await inspection.event_story(event_id)
                if story is not None:
                    stories.append(story)
                if len(stories) >= MAX_ALERT_EVENTS:
                    break
        return stories, False

    stories, by_event_id = with_queue(args, work)
    if not stories:
        raise CommandFailed(
            f"no stored event {wanted} (nor any stored event about such an alert)", EXIT_INPUT
        )
    views = [story_view(story) for story in stories]
    if args.json:
        print_json(views[0] if by_event_id else views)
    else:
        for number, view in enumerate(views):
            if number:
                print()
            print_story(view)
    return EXIT_OK


def story_view(story: EventStory) -> dict[str, Any]:
    """The story as plain data (what ``--json`` prints)."""
    routing: dict[str, Any] | None = json.loads(story.routing) if story.routing else None
    failed = story.state == "failed"
    return {
        "id": story.id,
        "received": {
            "hook": story.hook,
            "source": story.source,
            "at": timestamp(story.received_at),
            "dedupe_key": story.dedupe_key,
            # A duplicate is answered without a write: how many came is not recorded.
            "duplicates_seen": None,
        },
        "state": story.state,
        "routing_attempts": story.attempts,
        "routing": routing,
        "routing_error": story.last_error,
        "next_routing_at": timestamp(story.next_attempt_at) if story.state == "pending" else None,
        "dead_letter": {"since": timestamp(story.next_attempt_at), "error": story.last_error}
        if failed
        else None,
        "deliveries": [_delivery_view(d) for d in story.deliveries],
    }


def _delivery_view(delivery: DeliveryStory) -> dict[str, Any]:
    dead = delivery.state == "dead"
    return {
        "id": delivery.id,
        "route": delivery.route,
        "sink": delivery.sink,
        "state": delivery.state,
        "attempts": delivery.attempts,
        "created_at": timestamp(delivery.created_at),
        "finished_at": timestamp(delivery.finished_at),
        "next_attempt_at": timestamp(delivery.next_attempt_at)
        if delivery.state == "pending"
        else None,
        "last_error": delivery.last_error,
        # Storm mode folded it into a digest: that delivery carries it (README "Storm mode").
        "folded_into": None
        if delivery.folded_into is None
        else {"delivery": delivery.folded_into, "state": delivery.folded_into_state},
        "dead_letter": {"since": timestamp(delivery.finished_at), "error": delivery.last_error}
        if dead
        else None,
        "history": [
            {
                "attempt": a.attempt,
                "at": timestamp(a.at),
                "outcome": a.outcome,
                "status": a.status,
                "detail": a.detail,
                "next_attempt_at": timestamp(a.next_attempt_at),
                "paused_until": timestamp(a.paused_until),
            }
            for a in delivery.history
        ],
    }


def print_story(view: dict[str, Any]) -> None:
    """The story for a terminal, one fact per line."""
    received = view["received"]
    print(f"event {view['id']}: {view['state']}")
    print(
        f"  received   {received['at']} on hook {inert(received['hook'])} "
        f"(source {inert(received['source'])})"
    )
    print(f"  dedupe key {inert(received['dedupe_key'])} (duplicates seen: not recorded)")
    routing = view["routing"]
    if routing is not None:
        print(
            f"  routed     as {inert(routing['type'])}/{inert(routing['action'])} after "
            f"{view['routing_attempts']} attempt(s)"
        )
        errors = routing.get("enrichment_errors") or {}
        for name, reason in errors.items():
            print(f"  enrichment {inert(name)} failed: {inert(reason)}")
        enriched = routing.get("enriched") or []
        if enriched:
            print(f"  enrichment added {inert(', '.join(enriched))}")
        elif not errors:
            print("  enrichment none")
        community = routing.get("community")
        if community:
            print(
                f"  community  {inert(str(community.get('name')))} "
                f"({inert(str(community.get('uuid')))})"
            )
        change = routing.get("change")
        if isinstance(change, dict):
            seen = change.get("already_notified")
            print(
                f"  change     {inert(str(change.get('key')))}: "
                + ("already notified by reconciliation: no delivery" if seen else "first seen")
            )
        if not routing["routes"]:
            print("  routes     none whose match accepts this type and action")
        for decision in routing["routes"]:
            verdict = "matched" if decision["matched"] else "no match"
            sinks = f" -> {', '.join(decision['sinks'])}" if decision["sinks"] else ""
            print(
                f"  route      {inert(decision['route'])}: {verdict} "
                f"({inert(decision['reason'])}){inert(sinks)}"
            )
            for line in gate_lines(decision):
                print(f"             {inert(line)}")
            silence = decision.get("silence")
            if silence:
                print(
                    f"    silenced by {inert(silence['id'])}: not sent "
                    f"({inert(silence.get('comment', ''))})"
                )
            window = decision.get("window")
            if window:
                print(f"    window {inert(window['name'])}: {inert(window['reason'])}")
            for line in decision_lines(decisions_of(decision)):
                print(f"               {inert(line)}")
    elif view["state"] == "pending":
        print(f"  routing    pending, next attempt {view['next_routing_at']}")
        if view["routing_error"]:
            print(f"  last error {inert(view['routing_error'])}")
    elif view["state"] == "routed":
        print("  routing    decisions not recorded (routed by an older notirouter)")
    if view["dead_letter"] is not None:
        dead = view["dead_letter"]
        print(f"  NOT ROUTED since {dead['since']}: {inert(dead['error'] or '')}")
        print(f"  dead letter: replay with 'notirouter dead replay {view['id']}'")
    for delivery in view["deliveries"]:
        _print_delivery(delivery)


def _print_delivery(d: dict[str, Any]) -> None:
    print(
        f"  delivery {d['id']} route {inert(d['route'])} -> sink {inert(d['sink'])}: "
        f"{d['state']} after {d['attempts']} attempt(s), created {d['created_at']}"
    )
    for a in d["history"]:
        line = f"    attempt {a['attempt']} at {a['at']}: {a['outcome']}"
        if a["detail"]:  # an HTTP sink's detail starts with the status
            line += f": {inert(a['detail'])}"
        elif a["status"] is not None:
            line += f": HTTP {a['status']}"
        if a["next_attempt_at"]:
            line += f"; next try {a['next_attempt_at']}"
        if a["paused_until"]:
            line += f"; sink paused until {a['paused_until']}"
        print(line)
    if d["attempts"] > len(d["history"]):
        print(f"    ({d['attempts'] - len(d['history'])} attempt(s) without a recorded outcome)")
    if d["state"] == "pending":
        print(f"    next attempt {d['next_attempt_at']}")
    folded = d.get("folded_into")
    if folded is not None:
        print(
            f"    folded by storm mode into digest delivery {folded['delivery']} "
            f"({folded['state'] or 'no longer stored'}), {d['finished_at']}"
        )
    if d["dead_letter"] is not None:
        print(
            f"    DEAD since {d['dead_letter']['since']}: {inert(d['last_error'] or '')}; "
            f"replay with 'notirouter dead replay {d['id']}'"
        )
