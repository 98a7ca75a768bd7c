"""One conversation per alert: the first message is posted and its id kept per (sink, thread
key) on every queue backend; later messages update it and/or reply under it, in order."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from notirouter.cli import main
from notirouter.config.errors import ConfigError
from notirouter.config.loader import load_config
from notirouter.queue.records import NewDelivery
from tests.backends import Backend
from tests.chat_api_fakes import DiscordFake, MattermostFake, SlackFake
from tests.loopback import LoopbackServer
from tests.sekoia_fixtures import alert_event, comment_event
from tests.serving import Served, config, post_events, serve, wait_until_idle

ROOT = "1000.000001"


def slack_sink(server: LoopbackServer, extra: str = "") -> str:
    return (
        f'  chat: {{type: slack, token: xoxb-test-token, channel: "#alerts",'
        f' api_url: "{server.url}/api", rate_limit: 0{extra}}}'
    )


def lifecycle() -> list[dict[str, Any]]:
    """An alert created, updated three times and commented twice."""
    events = [alert_event("created")]
    events += [alert_event("updated", updated={"similar": n}) for n in (2, 3, 4)]
    for n in (1, 2):
        comment = comment_event()
        comment["attributes"]["content"] = f"comment number {n}"
        comment["attributes"]["uuid"] = f"c0mment{n}"
        events.append(comment)
    return events


async def settle(served: Served, server: LoopbackServer, count: int) -> None:
    """Wait until ``count`` calls arrived and the queue has nothing left to send: any extra
    call would have come by then."""
    await server.wait_for(count, timeout=60.0)
    await wait_until_idle(served)


def texts(call_body: dict[str, Any]) -> str:
    return json.dumps(call_body["blocks"], ensure_ascii=False)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (
            "update+thread",
            ["post"] + [f"update {ROOT}", f"reply {ROOT}"] * 3 + [f"reply {ROOT}"] * 2,
        ),
        ("thread", ["post"] + [f"reply {ROOT}"] * 5),
        # A comment does not show the alert's state: in update mode it is a message of its own.
        ("update", ["post"] + [f"update {ROOT}"] * 3 + ["post"] * 2),
    ],
)
async def test_an_alert_is_one_slack_conversation_in_order(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    mode: str,
    expected: list[str],
) -> None:
    fake = SlackFake()
    fake.install(loopback)
    path = write_config(
        config(
            queue_backend,
            slack_sink(loopback, f", conversation: {mode}"),
            "  - {name: r, sinks: [chat]}",
            # One routing worker: the deliveries are created in the order the events came.
            ", route_workers: 1",
        )
    )
    async with serve(path) as served:
        # All six at once: the dispatcher must still post only one root message.
        await post_events(served, lifecycle())
        await settle(served, loopback, len(expected))
    assert fake.shape() == expected
    assert fake.calls[0].body["channel"] == "#alerts"
    assert "New alert" in texts(fake.calls[0].body)
    edits = [c for c in fake.calls if c.method == "chat.update"]
    assert all(c.body["channel"] == "C0ALERTS" for c in edits)
    shown = [texts(c.body) for c in fake.calls[1:]]
    order = [
        next(n for n in ("→ 2", "→ 3", "→ 4", "number 1", "number 2") if n in t) for t in shown
    ]
    assert order == sorted(order, key=["→ 2", "→ 3", "→ 4", "number 1", "number 2"].index)


async def test_the_reference_survives_a_restart(
    queue_backend: Backend, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    fake = SlackFake()
    fake.install(loopback)
    path = write_config(
        config(
            queue_backend,
            slack_sink(loopback, ", conversation: update"),
            "  - {name: r, sinks: [chat]}",
        )
    )
    async with serve(path) as served:
        await post_events(served, [alert_event("created")])
        await settle(served, loopback, 1)
    async with serve(path) as served:
        await post_events(served, [alert_event("updated", updated={"similar": 7})])
        await settle(served, loopback, 2)
    assert fake.shape() == ["post", f"update {ROOT}"]


async def test_a_refused_edit_posts_anew_and_the_new_message_is_the_reference(
    queue_backend: Backend, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    fake = SlackFake(refuse_edits=True)
    fake.install(loopback)
    path = write_config(config(queue_backend, slack_sink(loopback), "  - {name: r, sinks: [chat]}"))
    async with serve(path) as served:
        await post_events(served, [alert_event("created")])
        await settle(served, loopback, 1)
        await post_events(served, [alert_event("updated", updated={"similar": 7})])
        # The edit is refused: a new root, and the reply goes under the new one.
        await settle(served, loopback, 4)
    assert fake.shape() == ["post", f"update {ROOT}", "post", "reply 1000.000002"]


async def test_the_reference_expires_after_its_retention(
    queue_backend: Backend, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    fake = SlackFake()
    fake.install(loopback)
    text = config(queue_backend, slack_sink(loopback), "  - {name: r, sinks: [chat]}")
    path = write_config(text.replace("queue: {", "queue: {conversation_retention: 1s, "))
    async with serve(path) as served:
        await post_events(served, [alert_event("created")])
        await settle(served, loopback, 1)
        await asyncio.sleep(1.2)
        await post_events(served, [alert_event("updated", updated={"similar": 7})])
        await settle(served, loopback, 2)
    assert fake.shape() == ["post", "post"]


async def test_references_are_kept_per_sink_and_key_and_pruned(queue_backend: Backend) -> None:
    queue = queue_backend.make()
    await queue.open()
    try:
        refs = queue.message_refs()
        assert await refs.get("chat", "alert-1", 3600) is None
        await refs.put("chat", "alert-1", "C1 1.1")
        await refs.put("other", "alert-1", "C2 2.2")
        await refs.put("chat", "alert-1", "C1 1.3")  # a refused edit's new message
        assert await refs.get("chat", "alert-1", 3600) == "C1 1.3"
        assert await refs.get("other", "alert-1", 3600) == "C2 2.2"
        await asyncio.sleep(0.05)
        assert await refs.get("chat", "alert-1", 0.01) is None  # expired, not yet pruned
        assert await refs.prune(3600) == 0
        assert await refs.prune(0.01) == 2
        assert await refs.get("chat", "alert-1", 3600) is None
    finally:
        await queue.close()


async def test_deliveries_of_one_thread_key_are_claimed_one_at_a_time(
    queue_backend: Backend,
) -> None:
    queue = queue_backend.make()
    await queue.open()
    try:
        for n, key in enumerate(["a", "a", "b", None, "a"]):
            # Routed one by one, in order: the delivery ids follow it.
            await queue.enqueue(hook="h", source="s", dedupe_key=f"k{n}", body=b"{}")
            (stored,) = await queue.claim_events(1, 30)
            message = json.dumps({"title": "t", "thread_key": key})
            assert await queue.complete_event(stored, [NewDelivery("r", "chat", message)])
        first = await queue.claim_deliveries("chat", 10, 30, in_order=True)
        assert sorted(json.loads(d.message_json)["thread_key"] or "-" for d in first) == [
            "-",
            "a",
            "b",
        ]
        # While the first job of "a" is unfinished, no later one of "a" can be claimed.
        assert await queue.claim_deliveries("chat", 10, 30, in_order=True) == []
        held = next(d for d in first if json.loads(d.message_json)["thread_key"] == "a")
        assert await queue.finish_delivery(held, state="done", error=None)
        second = await queue.claim_deliveries("chat", 10, 30, in_order=True)
        assert [json.loads(d.message_json)["thread_key"] for d in second] == ["a"]
        assert second[0].id > held.id
    finally:
        await queue.close()


def test_a_webhook_url_cannot_be_given_a_conversation(write_config: Callable[..., Path]) -> None:
    path = write_config(
        """
        sinks:
          chat: {type: slack, url: "https://hooks.slack.com/services/T/B/x", conversation: update}
        routes:
          - {name: r, sinks: [chat]}
        """
    )
    with pytest.raises(ConfigError, match="conversation needs token and channel"):
        load_config(path)


def test_the_token_is_never_sent_over_plain_http_off_loopback(
    write_config: Callable[..., Path],
) -> None:
    path = write_config(
        """
        sinks:
          chat: {type: slack, token: xoxb-1, channel: C1, api_url: "http://slack.example/api"}
        routes:
          - {name: r, sinks: [chat]}
        """
    )
    with pytest.raises(ConfigError, match=r"plain http only on 127\.0\.0\.1"):
        load_config(path)


def discord_sink(server: LoopbackServer, extra: str = "") -> str:
    return (
        f'  chat: {{type: discord, url: "{server.url}/api/webhooks/1/tok3n", rate_limit: 0{extra}}}'
    )


async def test_an_alert_is_one_discord_message_edited_in_place(
    queue_backend: Backend, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    fake = DiscordFake()
    fake.install(loopback)
    path = write_config(
        config(
            queue_backend,
            discord_sink(loopback),
            "  - {name: r, sinks: [chat]}",
            ", route_workers: 1",
        )
    )
    async with serve(path) as served:
        await post_events(served, lifecycle())
        await settle(served, loopback, 6)
    # One message for the alert, edited three times; the comments are messages of their own.
    assert fake.shape() == ["post"] + ["edit 9001"] * 3 + ["post"] * 2
    edits = [c for c in fake.calls if c.method == "PATCH"]
    assert all(c.path == "/api/webhooks/1/tok3n/messages/9001" for c in edits)
    assert "occurrences → 4" in json.dumps(edits[-1].body, ensure_ascii=False)


async def test_a_discord_forum_post_is_edited_and_replied_in(
    queue_backend: Backend, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    fake = DiscordFake()
    fake.install(loopback)
    path = write_config(
        config(
            queue_backend,
            discord_sink(loopback, ", forum: true, conversation: update+thread"),
            "  - {name: r, sinks: [chat]}",
            ", route_workers: 1",
        )
    )
    async with serve(path) as served:
        await post_events(served, lifecycle()[:2])
        await settle(served, loopback, 3)
    assert fake.shape() == ["post", "edit 9001 7001", "post 7001"]
    assert fake.calls[0].body["thread_name"].startswith("New alert")
    assert "thread_name" not in fake.calls[2].body


def test_discord_threads_need_a_forum(write_config: Callable[..., Path]) -> None:
    path = write_config(
        """
        sinks:
          chat: {type: discord, url: "https://discord.com/api/webhooks/1/x", conversation: thread}
        routes:
          - {name: r, sinks: [chat]}
        """
    )
    with pytest.raises(ConfigError, match="needs forum: true"):
        load_config(path)


def test_check_says_what_each_chat_sink_does_with_a_conversation(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(
        """
        sinks:
          hook: {type: slack, url: "https://hooks.slack.com/services/T/B/x"}
          bot: {type: slack, token: xoxb-1, channel: C1, conversation: thread}
          disc: {type: discord, url: "https://discord.com/api/webhooks/1/x"}
          plain: {type: log}
          mm: {type: mattermost, url: "https://chat.example/hooks/abcdefghijklmnop"}
        routes:
          - {name: r, sinks: [hook, bot, disc, plain, mm]}
        """
    )
    assert main(["check", "-c", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert lines == [
        "sink hook: posts every message: a webhook URL cannot edit, reply in a thread or return"
        " a message id (give token and channel for update+thread)",
        "sink hook: actions: none: a webhook URL cannot show buttons (give token and channel)",
        "sink bot: conversation: thread",
        "sink disc: conversation: update",
        "sink disc: actions: none: a webhook's messages carry link buttons only",
        "sink mm: posts every message: a webhook URL cannot edit, reply in a thread or return"
        " a post id (give server_url, token and channel_id for update+thread)",
        "sink mm: actions: none: a webhook URL cannot show buttons (give server_url and token)",
    ]


MM_ROOT = f"p{1:025d}"


def mattermost_sink(server: LoopbackServer, extra: str = "") -> str:
    return (
        f'  chat: {{type: mattermost, server_url: "{server.url}", token: mm-test-token,'
        f" channel_id: abcdefghijklmnopqrstuvwxyz, rate_limit: 0{extra}}}"
    )


async def test_an_alert_is_one_mattermost_conversation(
    queue_backend: Backend, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    fake = MattermostFake()
    fake.install(loopback)
    path = write_config(
        config(
            queue_backend,
            mattermost_sink(loopback),
            "  - {name: r, sinks: [chat]}",
            ", route_workers: 1",
        )
    )
    async with serve(path) as served:
        await post_events(served, lifecycle())
        await settle(served, loopback, 9)
    assert fake.shape() == (
        ["post"] + [f"patch {MM_ROOT}", f"reply {MM_ROOT}"] * 3 + [f"reply {MM_ROOT}"] * 2
    )
    root = fake.calls[0].body
    assert root["channel_id"] == "abcdefghijklmnopqrstuvwxyz"
    assert "New alert" in root["message"]
    assert root["props"]["attachments"]
    last_patch = [c for c in fake.calls if c.method == "PUT"][-1]
    assert "occurrences → 4" in last_patch.body["message"]
    assert "comment number 2" in fake.calls[-1].body["message"]


async def test_a_deleted_mattermost_post_is_posted_anew(
    queue_backend: Backend, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    fake = MattermostFake(deleted={MM_ROOT})
    fake.install(loopback)
    path = write_config(
        config(
            queue_backend,
            mattermost_sink(loopback, ", conversation: update"),
            "  - {name: r, sinks: [chat]}",
        )
    )
    async with serve(path) as served:
        await post_events(served, [alert_event("created")])
        await settle(served, loopback, 1)
        await post_events(served, [alert_event("updated", updated={"similar": 7})])
        await settle(served, loopback, 3)
        await post_events(served, [alert_event("updated", updated={"similar": 8})])
        await settle(served, loopback, 4)
    second = f"p{2:025d}"
    assert fake.shape() == ["post", f"patch {MM_ROOT}", "post", f"patch {second}"]


async def test_two_processes_never_hold_two_jobs_of_one_thread_key(
    postgres_backend: Backend,
) -> None:
    first, second = postgres_backend.make(), postgres_backend.make()
    await first.open()
    await second.open()
    try:
        for n in range(4):
            await first.enqueue(hook="h", source="s", dedupe_key=f"k{n}", body=b"{}")
            (stored,) = await first.claim_events(1, 30)
            message = json.dumps({"title": "t", "thread_key": "alert-1"})
            assert await first.complete_event(stored, [NewDelivery("r", "chat", message)])
        # Both claim at once, as two workers on one database would.
        claims = await asyncio.gather(
            *(queue.claim_deliveries("chat", 10, 30, in_order=True) for queue in (first, second))
        )
        assert sum(len(claimed) for claimed in claims) == 1
    finally:
        await first.close()
        await second.close()


async def test_jobs_of_one_thread_key_run_in_the_order_their_events_came(
    queue_backend: Backend,
) -> None:
    queue = queue_backend.make()
    await queue.open()
    try:
        for n in range(2):
            await queue.enqueue(hook="h", source="s", dedupe_key=f"k{n}", body=b"{}")
        events = sorted(await queue.claim_events(2, 30), key=lambda e: e.received_at)
        # Two routing workers finish the later event first.
        for stored in reversed(events):
            message = json.dumps({"title": stored.id, "thread_key": "alert-1"})
            assert await queue.complete_event(stored, [NewDelivery("r", "chat", message)])
        (first,) = await queue.claim_deliveries("chat", 10, 30, in_order=True)
        assert first.event_id == events[0].id
    finally:
        await queue.close()
