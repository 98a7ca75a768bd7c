"""Storm control, item 3: throttles, through the real runtime on both backends.

Within a key's window the first ``max`` events go out as usual; the rest are not dropped but
held in the queue and sent as one digest when the window ends, listing every one of them.
Windows and held events live in the queue: a killed process's digest still goes out.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from notirouter.config.errors import ConfigError
from notirouter.config.loader import load_config_text
from notirouter.config.models import QueueConfig
from tests.backends import Backend
from tests.conftest import TOKEN
from tests.loopback import LoopbackServer
from tests.sekoia_fixtures import metadata
from tests.serve_process import free_port, start_serve, wait_exit
from tests.serving import Served, serve
from tests.test_grouping import alert, messages, routed_count


def config(backend: Backend, sink_url: str, throttle: str, extra: str = "") -> str:
    return f"""
hooks:
  - {{name: sekoia, token: {TOKEN}}}
queue: {backend.yaml()}
delivery: {{backoff_initial: 50ms, backoff_max: 200ms, lease: 30s}}
server: {{access_log: false}}
sinks:
  a: {{type: webhook, url: "{sink_url}"}}
routes:
  - name: noisy
    match: {{type: alert}}
    sinks: [a]
    throttle: {throttle}{extra}
"""


THROTTLE = '{key: "{{ attributes.rule_name }}", max: 3, per: 4s}'


async def post_ids(base: str, events: list[dict[str, Any]]) -> list[str]:
    """Post one after the other (the order the window counts them in); the event ids."""
    ids = []
    async with aiohttp.ClientSession() as client:
        for item in events:
            async with client.post(f"{base}/hooks/{TOKEN}", json=item) as response:
                assert response.status == 202
                ids.append(str((await response.json())["id"]))
    return ids


async def routing_records(served: Served, ids: list[str]) -> list[dict[str, Any]]:
    """Each event's route entry once routed (at most 10 s)."""
    found: list[dict[str, Any]] = []
    for event_id in ids:
        for _ in range(200):
            story = await served.runtime.queue.inspection().event_story(event_id)
            if story is not None and story.routing is not None:
                found.append(json.loads(story.routing)["routes"][0])
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"event {event_id} was not routed")
    return found


async def test_beyond_max_events_are_folded_into_one_digest_at_the_window_end(
    queue_backend: Backend, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    path = write_config(config(queue_backend, loopback.url, THROTTLE))
    async with serve(path) as served:
        ids = await post_ids(served.url, [alert(n) for n in range(8)])
        records = await routing_records(served, ids)
        await loopback.wait_for(4, timeout=15)
        await asyncio.sleep(0.5)  # a fifth message would have arrived by now
    passed = [m for m in messages(loopback) if m.get("digest") is None]
    # Sent when the window ended, not before (the loopback's clock is monotonic).
    window_ends = records[-1]["throttle"]["window_ends"]
    sent_at = loopback.requests[-1].at + (time.time() - time.monotonic())
    assert sent_at >= window_ends - 0.1
    # Routing workers run side by side: the window counts events in the order they are routed.
    outcomes = [r["throttle"]["outcome"] for r in records]
    assert sorted(outcomes) == ["folded"] * 5 + ["passed"] * 3
    assert sorted(r["throttle"]["count"] for r in records) == list(range(1, 9))
    assert {r["throttle"]["key"] for r in records} == {"PowerShell"}
    titles = [f"New alert: AL{n}" for n in range(8)]
    passed_titles = [t for t, outcome in zip(titles, outcomes, strict=True) if outcome == "passed"]
    folded = [i for i, outcome in zip(ids, outcomes, strict=True) if outcome == "folded"]
    assert sorted(m["title"] for m in passed) == passed_titles
    [digest] = [m for m in messages(loopback) if m.get("digest") is not None]
    assert len(messages(loopback)) == 4
    assert digest["digest"]["count"] == 5
    assert sorted(digest["digest"]["event_ids"]) == sorted(folded)  # every folded event
    assert sorted(item["title"] for item in digest["digest"]["items"]) == sorted(
        set(titles) - set(passed_titles)
    )
    assert "throttled beyond 3 per 4s" in json.dumps(digest["digest"]["group"])
    assert digest["title"].startswith("5 notifications on noisy")


async def test_each_key_has_its_own_window(
    queue_backend: Backend, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    path = write_config(
        config(queue_backend, loopback.url, '{key: "{{ attributes.rule_name }}", max: 1, per: 1h}')
    )
    async with serve(path) as served:
        ids = await post_ids(served.url, [alert(1, "A"), alert(2, "B"), alert(3, "A")])
        records = await routing_records(served, ids)
        await loopback.wait_for(2, timeout=15)
    # Routing workers take A's two events in either order: one passes, the other is folded.
    outcomes: dict[str, list[str]] = {}
    for record in records:
        outcomes.setdefault(record["throttle"]["key"], []).append(record["throttle"]["outcome"])
    assert {key: sorted(found) for key, found in outcomes.items()} == {
        "A": ["folded", "passed"],
        "B": ["passed"],
    }
    assert len(loopback.requests) == 2


async def test_a_new_window_starts_after_the_last_one_ended(
    queue_backend: Backend, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    path = write_config(
        config(queue_backend, loopback.url, '{key: "{{ attributes.rule_name }}", max: 1, per: 1s}')
    )
    async with serve(path) as served:
        first = await routing_records(served, await post_ids(served.url, [alert(1)]))
        first += await routing_records(served, await post_ids(served.url, [alert(2)]))
        await loopback.wait_for(2, timeout=15)  # the first, then the digest of the second
        later = await routing_records(served, await post_ids(served.url, [alert(3)]))
        await loopback.wait_for(3, timeout=15)
    assert [r["throttle"]["outcome"] for r in first] == ["passed", "folded"]
    assert later[0]["throttle"]["outcome"] == "passed"
    assert later[0]["throttle"]["count"] == 1
    assert [m["title"] for m in messages(loopback)][2] == "New alert: AL3"


async def test_sigkill_with_a_pending_digest_then_restart_still_sends_it(
    queue_backend: Backend, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    path = write_config(
        config(queue_backend, loopback.url, '{key: "{{ attributes.rule_name }}", max: 2, per: 8s}')
    )
    log = path.parent / "serve.log"
    port = free_port()
    process = await start_serve(path, port, log)
    try:
        await post_ids(f"http://127.0.0.1:{port}", [alert(n) for n in range(6)])
        for _ in range(200):  # at most 10 s
            if await routed_count(queue_backend) == 6:
                break
            await asyncio.sleep(0.05)
        await loopback.wait_for(2, timeout=15)
    finally:
        process.kill()  # SIGKILL: the window's digest is only in the queue
        process.wait()
    assert len(loopback.requests) == 2
    process = await start_serve(path, port, log)
    try:
        await loopback.wait_for(3, timeout=20)
        await asyncio.sleep(1.0)
    finally:
        process.terminate()
        await wait_exit(process, 10)
    assert len(loopback.requests) == 3
    digest = messages(loopback)[2]
    assert digest["digest"]["count"] == 4
    assert len(set(digest["digest"]["event_ids"])) == 4
    listed = {i["title"] for i in digest["digest"]["items"]}
    sent_alone = {m["title"] for m in messages(loopback)[:2]}
    assert listed | sent_alone == {f"New alert: AL{n}" for n in range(6)}


async def test_two_processes_on_postgres_share_one_window(
    postgres_backend: Backend, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    path = write_config(
        config(
            # A window long enough for both processes to route all 30 on a loaded machine.
            postgres_backend,
            loopback.url,
            '{key: "{{ attributes.rule_name }}", max: 5, per: 12s}',
        )
    )
    async with serve(path) as one, serve(path) as two:
        events = [alert(n) for n in range(30)]
        ids = await asyncio.gather(post_ids(one.url, events[::2]), post_ids(two.url, events[1::2]))
        records = await routing_records(one, [*ids[0], *ids[1]])
        await loopback.wait_for(6, timeout=45)
        await asyncio.sleep(1.0)
    outcomes = [r["throttle"]["outcome"] for r in records]
    assert outcomes.count("passed") == 5
    assert sorted(r["throttle"]["count"] for r in records) == list(range(1, 31))
    digests = [m for m in messages(loopback) if m.get("digest") is not None]
    assert len(messages(loopback)) == 6
    [digest] = digests
    assert digest["digest"]["count"] == 25


async def test_throttle_and_notify_on_together_count_only_what_would_notify(
    queue_backend: Backend, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    notify_on = '\n    notify_on: {key: "{{ attributes.uuid }}", changes: [attributes.status_name]}'
    path = write_config(
        config(
            queue_backend,
            loopback.url,
            '{key: "{{ attributes.rule_name }}", max: 1, per: 1h}',
            notify_on,
        )
    )
    async with serve(path) as served:
        same = [alert(1), alert(1) | {"metadata": metadata(uuid="again")}]
        records = await routing_records(served, await post_ids(served.url, same))
        await loopback.wait_for(1, timeout=15)
    # Routing workers take the two in either order: whichever is second is the unchanged one.
    counted = [r for r in records if "throttle" in r]
    suppressed = [r for r in records if "throttle" not in r]  # suppressed before it was counted
    assert [r["throttle"]["outcome"] for r in counted] == ["passed"]
    assert [r["notify_on"]["changed"] for r in suppressed] == [False]


async def test_a_key_that_renders_empty_lets_the_message_through_and_says_so(
    queue_backend: Backend, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    notify_on = (
        '\n    notify_on: {key: "{{ attributes.nothing }}", changes: [attributes.status_name]}'
    )
    throttle = '{key: "{{ attributes.rule_name }}", max: 5, per: 1h}'
    path = write_config(config(queue_backend, loopback.url, throttle, notify_on))
    async with serve(path) as served:
        ids = await post_ids(served.url, [alert(1), alert(1) | {"metadata": metadata(uuid="b")}])
        records = await routing_records(served, ids)
        await loopback.wait_for(2, timeout=15)
    for record in records:
        assert record["notify_on"] == {
            "key": None,
            "changed": True,
            "reason": "empty key: notified",
        }
    assert sorted(r["throttle"]["count"] for r in records) == [1, 2]


@pytest.mark.parametrize(
    ("throttle", "column", "message"),
    [
        ('{key: "", max: 3, per: 1m}', 21, "the key must not be empty"),
        ('{key: "{{ x", max: 3, per: 1m}', 21, "throttle.key: does not compile"),
        ('{key: "k", max: 0, per: 1m}', 31, "greater than or equal to 1"),
        ('{key: "k", max: 3, per: often}', 39, "expected a duration"),
        ('{key: "k", max: 3, per: 0}', 39, "greater than 0"),
        ('{key: "k", per: 1m}', 15, "max"),
    ],
)
def test_a_bad_throttle_is_a_located_config_error(throttle: str, column: int, message: str) -> None:
    text = config(Backend("sqlite", QueueConfig()), "http://127.0.0.1:1", throttle)
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "bad.yaml")
    shown = str(caught.value)
    assert shown.startswith(f"bad.yaml:13:{column}: routes."), shown  # the throttle line
    assert message in shown, shown
