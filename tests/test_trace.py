"""``notirouter trace``: one event's story from the queue, on both backends, while serving."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from notirouter.config.models import QueueConfig
from tests.backends import Backend
from tests.commands import SECRET, cli_json, run_cli, wait_until
from tests.loopback import LoopbackServer, Reply
from tests.older_queue import FIRST_SCHEMA
from tests.serving import config, post_event, serve

ALERT_UUID = "af0a370f-2e44-433c-99b2-2d0e4b348d0c"
ALERT_SHORT = "ALakbd8NXp9W"


def alert(n: int) -> dict[str, Any]:
    return {
        "type": "alert",
        "action": "created",
        "attributes": {"uuid": ALERT_UUID, "short_id": ALERT_SHORT},
        "metadata": {"uuid": f"alert-event-{n}"},
    }


def comment() -> dict[str, Any]:
    return {
        "type": "alert-comment",
        "action": "created",
        "attributes": {"alert_uuid": ALERT_UUID, "alert_short_id": ALERT_SHORT, "uuid": "c1"},
        "metadata": {"uuid": "comment-event-1"},
    }


async def trace_json(path: Path, wanted: str, capsys: pytest.CaptureFixture[str]) -> Any:
    return await cli_json(["trace", wanted, "--json", "-c", str(path)], capsys)


async def wait_until_settled(
    path: Path, event_id: str, capsys: pytest.CaptureFixture[str]
) -> dict[str, Any]:
    """The event's story once every delivery is done or dead."""

    def settled(story: dict[str, Any]) -> bool:
        deliveries = story["deliveries"]
        return bool(deliveries) and all(d["state"] in ("done", "dead") for d in deliveries)

    story: dict[str, Any] = await wait_until(
        lambda: trace_json(path, event_id, capsys), settled, what=f"event {event_id} settled"
    )
    return story


def write_routes(
    backend: Backend, write_config: Callable[..., Path], url: str, refused_url: str
) -> Path:
    return write_config(
        config(
            backend,
            f'  a: {{type: webhook, url: "{url}/{SECRET}"}}\n'
            f'  refuses: {{type: webhook, url: "{refused_url}"}}',
            "  - {name: urgent, match: {type: alert}, when: \"attributes.short_id == '"
            + ALERT_SHORT
            + "'\", continue: true, sinks: [a]}\n"
            "  - {name: never, match: {type: alert}, when: \"attributes.short_id == 'x'\","
            " sinks: [a]}\n"
            "  - {name: comments, match: {type: alert-comment}, sinks: [refuses]}\n"
            "  - {name: cases, match: {type: case}, sinks: [a]}",
        )
    )


async def test_trace_tells_receipt_route_decisions_and_every_attempt(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    second_loopback: LoopbackServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The service first fails and echoes the secret part of its URL, then accepts.
    loopback.reply(Reply(503, f"busy, hook {SECRET}", {"Retry-After": "1"}), Reply(200, "ok"))
    second_loopback.reply(Reply(400, "no such channel"))
    path = write_routes(queue_backend, write_config, loopback.url, second_loopback.url)
    async with serve(path) as served:
        event_id = await post_event(served, alert(1))
        story = await wait_until_settled(path, event_id, capsys)

        assert story["id"] == event_id
        assert story["state"] == "routed"
        assert story["received"]["hook"] == "sekoia"
        assert story["received"]["dedupe_key"] == "sekoia:alert-event-1"
        routing = story["routing"]
        assert (routing["type"], routing["action"]) == ("alert", "created")
        decisions = {d["route"]: d for d in routing["routes"]}
        assert set(decisions) == {"urgent", "never"}  # "cases" and "comments" never fit
        assert decisions["urgent"]["matched"] is True
        assert "when is true" in decisions["urgent"]["reason"]
        assert decisions["urgent"]["sinks"] == ["a"]
        assert decisions["never"]["matched"] is False
        assert "when is false" in decisions["never"]["reason"]

        [delivery] = story["deliveries"]
        assert (delivery["route"], delivery["sink"], delivery["state"]) == ("urgent", "a", "done")
        first, second = delivery["history"]
        assert (first["attempt"], first["outcome"], first["status"]) == (1, "retry", 503)
        assert first["next_attempt_at"] is not None and first["paused_until"] is not None
        assert SECRET not in json.dumps(story)
        assert "busy, hook" in first["detail"]
        assert (second["attempt"], second["outcome"], second["status"]) == (2, "delivered", 200)
        assert delivery["dead_letter"] is None and story["dead_letter"] is None

        code, out, _ = await run_cli(["trace", event_id, "-c", str(path)], capsys)
        assert code == 0
        assert f"event {event_id}: routed" in out
        assert "route      never: no match (when is false" in out
        assert "attempt 1 at " in out and ": retry: HTTP 503: busy, hook" in out
        assert "attempt 2 at " in out and ": delivered: HTTP 200" in out
        assert SECRET not in out


async def test_trace_by_alert_shows_every_event_about_it_and_its_dead_letters(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    second_loopback: LoopbackServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    second_loopback.reply(Reply(400, "no such channel"))
    path = write_routes(queue_backend, write_config, loopback.url, second_loopback.url)
    async with serve(path) as served:
        created = await post_event(served, alert(1))
        commented = await post_event(served, comment())
        unrelated = await post_event(
            served, {**alert(2), "attributes": {"uuid": "other", "title": ALERT_SHORT}}
        )
        await wait_until_settled(path, created, capsys)
        story = await wait_until_settled(path, commented, capsys)
        [dead] = story["deliveries"]
        assert (dead["sink"], dead["state"]) == ("refuses", "dead")
        assert dead["dead_letter"]["error"] == "HTTP 400: no such channel"
        assert dead["history"][-1]["outcome"] == "permanent"

        for reference in (ALERT_UUID, ALERT_SHORT):
            stories = await trace_json(path, reference, capsys)
            # Oldest first; the event that merely mentions the short id in a title is not one.
            assert [s["id"] for s in stories] == [created, commented]
            assert unrelated not in {s["id"] for s in stories}

        code, out, _ = await run_cli(["trace", ALERT_SHORT, "-c", str(path)], capsys)
        assert code == 0
        assert f"event {created}: routed" in out and f"event {commented}: routed" in out
        assert "DEAD since" in out and f"dead replay {dead['id']}" in out


async def test_trace_exit_codes_for_unknown_and_malformed_ids(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write_routes(queue_backend, write_config, loopback.url, loopback.url)
    async with serve(path) as served:
        await post_event(served, alert(1))
        code, out, err = await run_cli(["trace", "0" * 32, "-c", str(path)], capsys)
        assert (code, out) == (3, "")
        assert "no stored event " + "0" * 32 in err
        code, _, err = await run_cli(["trace", "NoSuchAlert1", "--json", "-c", str(path)], capsys)
        assert code == 3
        code, _, err = await run_cli(["trace", "not an id; DROP", "-c", str(path)], capsys)
        assert code == 2
        assert "neither an event id" in err


async def test_trace_of_an_event_routed_before_history_was_kept(
    tmp_path: Path,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A file of the first schema, with an event routed and delivered by an older notirouter.
    db = tmp_path / "q.db"
    event_id = "b" * 32
    now = time.time() - 60  # recent: serving prunes only what the dedupe window has passed
    with sqlite3.connect(db) as connection:
        connection.executescript(FIRST_SCHEMA.read_text())
        connection.execute(
            "INSERT INTO events (id, dedupe_key, hook, source, received_at, body, state,"
            " attempts, next_attempt_at) VALUES (?, 'old-1', 'sekoia', 'sekoia', ?, ?,"
            " 'routed', 1, ?)",
            (event_id, now, json.dumps(alert(1)).encode(), now),
        )
        connection.execute(
            "INSERT INTO deliveries (event_id, route, sink, message, state, attempts,"
            " created_at, next_attempt_at, finished_at) VALUES (?, 'urgent', 'a', '{}', 'done',"
            " 1, ?, ?, ?)",
            (event_id, now, now, now),
        )
    connection.close()
    backend = Backend("sqlite", QueueConfig(path=str(db)))
    path = write_routes(backend, write_config, loopback.url, loopback.url)
    async with serve(path):
        code, out, _ = await run_cli(["trace", event_id, "-c", str(path)], capsys)
    assert code == 0
    assert "decisions not recorded (routed by an older notirouter)" in out
    assert "delivery 1 route urgent -> sink a: done after 1 attempt(s)" in out
    assert "(1 attempt(s) without a recorded outcome)" in out


async def test_trace_shows_a_failed_enrichment_and_the_route_that_failed_open(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    second_loopback: LoopbackServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    second_loopback.reply(Reply(404, "no such alert"))  # the Sekoia.io API, on loopback
    text = config(
        queue_backend,
        f'  a: {{type: webhook, url: "{loopback.url}"}}',
        "  - {name: urgent, enrich: [sekoia], when: 'alert.urgency.current_value >= 70',"
        " sinks: [a]}",
    ) + (
        "enrichers:\n"
        f'  sekoia: {{type: sekoia, api_key: KEY, base_url: "{second_loopback.url}",'
        " region: fra1, attempts: 1}\n"
    )
    path = write_config(text)
    async with serve(path) as served:
        event_id = await post_event(served, alert(1))
        story = await wait_until_settled(path, event_id, capsys)
        routing = story["routing"]
        assert set(routing["enrichment_errors"]) == {"sekoia"}
        [decision] = routing["routes"]
        assert decision["matched"] is True
        assert "because enricher sekoia failed: sent anyway" in decision["reason"]
        code, out, _ = await run_cli(["trace", event_id, "-c", str(path)], capsys)
        assert code == 0
        assert "  enrichment sekoia failed: " in out
        assert "urgent: matched (type and action match; when could not be evaluated" in out


async def test_trace_of_a_delivery_given_up_after_its_maximum_age(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    loopback.reply(Reply(503, "still down"))
    path = write_config(
        config(
            queue_backend,
            f'  a: {{type: webhook, url: "{loopback.url}"}}',
            "  - {name: r, sinks: [a]}",
            delivery=", max_age: 1s",
        )
    )
    async with serve(path) as served:
        event_id = await post_event(served, alert(1))
        story = await wait_until_settled(path, event_id, capsys)
    [delivery] = story["deliveries"]
    assert delivery["state"] == "dead"
    assert delivery["dead_letter"]["error"].startswith("gave up after")
    *retries, last = delivery["history"]
    assert retries and all((a["outcome"], a["status"]) == ("retry", 503) for a in retries)
    assert (last["outcome"], last["status"], last["next_attempt_at"]) == ("dead", 503, None)
    assert [a["attempt"] for a in delivery["history"]] == list(range(1, delivery["attempts"] + 1))
