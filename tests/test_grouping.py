"""Storm control, item 1: grouping and digests, through the real runtime on both backends.

A grouped route holds its messages per group in the queue and sends, per group, its first
message after ``wait`` and then at most one digest per ``interval``. Every message is counted
and named by its event in the digest that carries it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from notirouter import TRUNCATION_MARKER, Message, Severity
from notirouter.config.errors import ConfigError
from notirouter.config.loader import load_config
from notirouter.delivery.digests import flushed_message
from notirouter.queue.records import NewGroupItem
from tests.backends import Backend
from tests.chat_helpers import build_sink
from tests.chat_messages import digest_of
from tests.conftest import TOKEN
from tests.loopback import LoopbackServer
from tests.sekoia_fixtures import alert_event, metadata
from tests.serve_process import free_port, start_serve, wait_exit
from tests.serving import serve
from tests.test_email_conformance import mail_of, parts, read_html


def config(backend: Backend, sink_url: str, group: str) -> str:
    return f"""
hooks:
  - {{name: sekoia, token: {TOKEN}}}
queue: {backend.yaml()}
delivery: {{backoff_initial: 50ms, backoff_max: 200ms, lease: 30s}}
server: {{access_log: false}}
sinks:
  a: {{type: webhook, url: "{sink_url}"}}
routes:
  - name: storm
    match: {{type: alert}}
    sinks: [a]
    group: {group}
"""


def alert(n: int, rule: str = "PowerShell", urgency: int = 30) -> dict[str, Any]:
    return alert_event(
        uuid=f"00000000-0000-0000-0000-{n:012d}",
        short_id=f"AL{n}",
        rule_name=rule,
        urgency_current_value=urgency,
        status_name="Pending",
    ) | {"metadata": metadata(uuid=f"m{n}-{rule}")}


async def post(base: str, events: list[dict[str, Any]]) -> None:
    async with aiohttp.ClientSession() as client:

        async def one(item: dict[str, Any]) -> None:
            async with client.post(f"{base}/hooks/{TOKEN}", json=item) as response:
                assert response.status == 202

        await asyncio.gather(*(one(item) for item in events))


def messages(loopback: LoopbackServer) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = [r.json() for r in loopback.requests]
    return found


async def quiet(loopback: LoopbackServer, seconds: float) -> None:
    """Let ``seconds`` pass in which a further message would have arrived."""
    await asyncio.sleep(seconds)


async def test_a_storm_within_wait_is_one_digest_with_the_count_and_highest_severity(
    queue_backend: Backend, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    path = write_config(
        config(queue_backend, loopback.url, "{by: [attributes.rule_name], wait: 2s, interval: 30s}")
    )
    async with serve(path) as served:
        storm = [alert(n, urgency=90 if n == 17 else 30) for n in range(50)]
        await post(served.url, storm)
        await loopback.wait_for(1, timeout=15)
        await quiet(loopback, 1.0)
    [digest] = messages(loopback)
    assert digest["digest"]["count"] == 50
    assert digest["severity"] == "critical"
    assert digest["title"].startswith("50 notifications on storm, highest CRITICAL")
    assert "PowerShell" in digest["title"]
    assert len(digest["digest"]["items"]) == 50
    assert digest["text"].count("\n- ") == 49  # one line per item
    assert "[CRITICAL] New alert: AL17 · Pending" in digest["text"]
    assert len(set(digest["digest"]["event_ids"])) == 50  # every event named


async def test_each_by_value_is_its_own_group(
    queue_backend: Backend, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    path = write_config(
        config(queue_backend, loopback.url, "{by: [attributes.rule_name], wait: 1s, interval: 30s}")
    )
    async with serve(path) as served:
        await post(served.url, [alert(n, rule="Mimikatz") for n in range(3)])
        await post(served.url, [alert(n, rule="PsExec") for n in range(3, 5)])
        await loopback.wait_for(2, timeout=15)
        await quiet(loopback, 1.0)
    counts = {m["digest"]["group"][0]["value"]: m["digest"]["count"] for m in messages(loopback)}
    assert counts == {"Mimikatz": 3, "PsExec": 2}
    assert len(loopback.requests) == 2


async def test_a_lone_first_message_goes_as_usual_and_later_ones_wait_for_the_interval(
    queue_backend: Backend, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    interval = 1.5
    path = write_config(
        config(queue_backend, loopback.url, f"{{by: [], wait: 300ms, interval: {interval}s}}")
    )
    async with serve(path) as served:
        await post(served.url, [alert(1)])
        await loopback.wait_for(1, timeout=10)
        first_at = time.time()
        await post(served.url, [alert(2), alert(3, urgency=60)])
        await asyncio.sleep(interval / 2)
        held = len(loopback.requests)  # still 1: the interval has not ended
        await loopback.wait_for(2, timeout=10)
        second_at = time.time()
        await quiet(loopback, 0.5)
    assert held == 1
    first, second = messages(loopback)
    assert first["digest"] is None
    assert first["title"] == "New alert: AL1"  # what it would be without grouping
    assert second["digest"]["count"] == 2  # what arrived since, not the first again
    assert second["severity"] == "high"
    assert second_at - first_at >= interval - 0.3
    assert len(loopback.requests) == 2


async def test_items_beyond_max_items_are_counted_as_and_n_more(
    queue_backend: Backend, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    path = write_config(
        config(queue_backend, loopback.url, "{by: [], wait: 1s, interval: 30s, max_items: 3}")
    )
    async with serve(path) as served:
        await post(served.url, [alert(n) for n in range(7)])
        await loopback.wait_for(1, timeout=10)
        await quiet(loopback, 0.5)
    [digest] = messages(loopback)
    assert digest["digest"]["count"] == 7
    assert len(digest["digest"]["items"]) == 3
    assert digest["digest"]["more"] == 4
    assert digest["text"].endswith("and 4 more")
    assert len(digest["digest"]["event_ids"]) == 7  # none out of reach


async def routed_count(backend: Backend) -> int:
    queue = backend.make()
    await queue.open(create=False)
    try:
        return (await queue.counts()).get("events_routed", 0)
    finally:
        await queue.close()


async def test_sigkill_while_a_group_waits_then_restart_sends_its_digest_once(
    queue_backend: Backend, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    path = write_config(config(queue_backend, loopback.url, "{by: [], wait: 2s, interval: 30s}"))
    log = path.parent / "serve.log"
    port = free_port()
    process = await start_serve(path, port, log)
    try:
        await post(f"http://127.0.0.1:{port}", [alert(n) for n in range(5)])
        for _ in range(200):  # at most 10 s
            if await routed_count(queue_backend) == 5:
                break
            await asyncio.sleep(0.05)
        assert loopback.requests == []
    finally:
        process.kill()  # SIGKILL: no drain, nothing flushed
        process.wait()
    process = await start_serve(path, port, log)
    try:
        await loopback.wait_for(1, timeout=15)
        await quiet(loopback, 1.0)
    finally:
        process.terminate()
        await wait_exit(process, 10)
    [digest] = messages(loopback)
    assert digest["digest"]["count"] == 5


async def test_two_processes_on_postgres_send_one_digest(
    postgres_backend: Backend, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    path = write_config(config(postgres_backend, loopback.url, "{by: [], wait: 1s, interval: 30s}"))
    async with serve(path) as one, serve(path) as two:
        events = [alert(n) for n in range(20)]
        await asyncio.gather(post(one.url, events[::2]), post(two.url, events[1::2]))
        await loopback.wait_for(1, timeout=15)
        await quiet(loopback, 1.5)
    [digest] = messages(loopback)
    assert digest["digest"]["count"] == 20


def test_a_by_expression_that_does_not_compile_is_a_config_error_with_its_position(
    write_config: Callable[..., Path],
) -> None:
    path = write_config(
        f"""
hooks: [{{name: sekoia, token: {TOKEN}}}]
sinks: {{a: {{type: log}}}}
routes:
  - name: storm
    sinks: [a]
    group:
      by: [attributes.rule_name, "attributes.(("]
"""
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    [problem] = [str(p) for p in caught.value.problems]
    assert problem.startswith(f"{path}:7:34: routes.storm.group.by: does not compile")


def test_without_group_nothing_is_held(write_config: Callable[..., Path]) -> None:
    path = write_config(
        f"""
hooks: [{{name: sekoia, token: {TOKEN}}}]
sinks: {{a: {{type: log}}}}
routes: [{{name: r, sinks: [a]}}]
"""
    )
    [route] = load_config(path).routes.routes
    assert route.group is None


async def test_a_storm_of_500_alerts_reaches_teams_as_at_most_3_messages_counting_all(
    queue_backend: Backend, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    group = "{by: [attributes.rule_name], wait: 3s, interval: 5s}"
    text = config(queue_backend, loopback.url, group)
    path = write_config(text.replace("type: webhook", "type: teams"))
    async with serve(path) as served:
        storm = [alert(n) for n in range(500)]
        for start in range(0, 500, 50):  # 50 senders at a time
            await post(served.url, storm[start : start + 50])
        counted = 0
        for _ in range(3):
            with contextlib.suppress(TimeoutError):
                await loopback.wait_for(len(loopback.requests) + 1, timeout=12)
            counted = sum(digest_count(r.body.decode()) for r in loopback.requests)
            if counted >= 500:
                break
        await quiet(loopback, 1.0)
    assert counted == 500
    assert len(loopback.requests) <= 3


def digest_count(card: str) -> int:
    """The count a Teams digest card states in its title."""
    found = re.search(r"(\d+) notifications on storm", card)
    assert found is not None, card[:500]
    return int(found.group(1))


@pytest.mark.parametrize("sink_type", ["teams", "discord", "mattermost", "slack"])
def test_a_digest_too_long_for_a_sink_keeps_whole_lines_and_counts_the_cut_ones(
    sink_type: str,
) -> None:
    long_titles = [
        Message(title=f"alert {n} " + "x" * 300, severity=Severity.HIGH) for n in range(200)
    ]
    digest = digest_of(long_titles, max_items=150)
    rendered = json.dumps(build_sink(sink_type).render(digest), ensure_ascii=False)
    listed = len(re.findall(r"alert \d+ x{300}", rendered))
    more = re.search(r"and (\d+) more", rendered)
    assert more is not None
    assert 0 < listed < 150
    assert listed + int(more.group(1)) == 200  # every item listed or counted
    assert "x" * 300 + TRUNCATION_MARKER not in rendered  # no line cut in half


def test_an_email_digest_is_a_table_of_inert_rows_and_counts_the_rest() -> None:
    hostile = Message(
        title="<b>bold</b> <a href='https://evil.example'>x</a>",
        severity=Severity.CRITICAL,
        link="javascript:alert(1)",
    )
    linked = Message(title="PowerShell", severity=Severity.LOW, link="https://app.example/a/1")
    digest = digest_of([hostile, linked, linked, linked], max_items=2)
    text, html = parts(mail_of(digest))
    reader = read_html(html)
    shown = "".join(reader.text)
    # Shown as typed (its URL defused, as in any mail title), never as markup.
    assert "CRITICAL<b>bold</b> <a href='https\u200b://evil.example'>x</a>" in shown.replace(
        "\n", ""
    )
    hrefs = [dict(attrs).get("href") for tag, attrs in reader.tags if tag == "a"]
    assert hrefs == [
        "https://app.example/a/1",
        "https://app.example/a/1",
        "https://app.example/a/1",
    ]
    assert "and 2 more" in shown
    assert "and 2 more: https\u200b://app.example/a/1" in text  # the plain part: the lines
    assert ("b", ()) not in reader.tags


def held_item(wait: float = 60.0) -> NewGroupItem:
    message = Message(title="held", severity=Severity.HIGH)
    return NewGroupItem(
        kind="group",
        route="storm",
        group_key="[]",
        sinks=("a",),
        wait=wait,
        interval=60.0,
        max_items=50,
        message_json=message.model_dump_json(),
        severity=message.severity.rank,
        link=None,
    )


async def test_an_event_whose_lease_was_lost_adds_nothing_to_its_group(
    queue_backend: Backend,
) -> None:
    queue = queue_backend.make()
    await queue.open()
    try:
        await queue.enqueue(hook="h", source="sekoia", dedupe_key="k", body=b"{}")
        [stale] = await queue.claim_events(1, 0.0)  # its lease ends at once
        [current] = await queue.claim_events(1, 30.0)
        assert not await queue.complete_event(stale, [], [held_item()])
        assert await queue.next_group_due() is None  # not routed: nothing held either
        before = time.time()
        assert await queue.complete_event(current, [], [held_item(wait=60.0)])
        due = await queue.next_group_due()
        assert due is not None and before + 60.0 <= due <= time.time() + 60.0
        assert await queue.flush_groups(10, flushed_message) == 0  # not due before its wait
    finally:
        await queue.close()


async def test_a_group_idle_for_a_whole_interval_is_forgotten_and_starts_anew(
    queue_backend: Backend, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    group = "{by: [], wait: 200ms, interval: 600ms}"
    path = write_config(config(queue_backend, loopback.url, group))
    async with serve(path) as served:
        await post(served.url, [alert(1)])
        await loopback.wait_for(1, timeout=10)
        for _ in range(100):  # at most 10 s: until the empty group has been forgotten
            if await served.runtime.queue.next_group_due() is None:
                break
            await asyncio.sleep(0.1)
        await post(served.url, [alert(2)])
        await loopback.wait_for(2, timeout=10)
    first, second = messages(loopback)
    assert (first["title"], second["title"]) == ("New alert: AL1", "New alert: AL2")
    assert second["digest"] is None  # a new group's lone first message, not a digest
