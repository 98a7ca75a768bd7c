"""Chat actions through a real ``serve``: a signed click on Slack (or a signed-token click on
Mattermost) is written back to Sekoia.io once, named after the user, and shown in the chat;
a bad signature, a stale timestamp, a replay or a token for another message changes nothing."""

from __future__ import annotations

import asyncio
import html
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from notirouter.cli import main
from plugins.chat.slack_actions import signature
from tests.backends import Backend
from tests.chat_api_fakes import MattermostFake, SlackFake
from tests.conftest import TOKEN
from tests.loopback import LoopbackServer
from tests.sekoia_fixtures import (
    ALERT_UUID,
    API_KEY,
    WORKFLOW_ACTIONS,
    Failure,
    FakeSekoia,
    alert_event,
)
from tests.serving import Served, serve
from tests.test_delivery import post_events

SIGNING_SECRET = "8f14e45fceea167a5a36dedd4bea2543"
ROOT_TS = "1000.000001"


@pytest.fixture
async def sekoia() -> AsyncIterator[FakeSekoia]:
    server = LoopbackServer()
    await server.start()
    yield FakeSekoia(server)
    await server.stop()


def slack_config(
    backend: Backend, slack: LoopbackServer, sekoia: FakeSekoia, allow: str = ""
) -> str:
    return f"""
hooks: [{{name: sekoia, token: {TOKEN}}}]
queue: {backend.yaml()}
delivery: {{backoff_initial: 50ms, backoff_max: 200ms, lease: 30s, route_workers: 1}}
enrichers:
  sekoia: {{type: sekoia, api_key: {API_KEY}, base_url: "{sekoia.url}", region: fra1,
            attempts: 1}}
sinks:
  chat:
    type: slack
    token: xoxb-test-token
    channel: "#alerts"
    api_url: "{slack.url}/api"
    rate_limit: 0
    actions: {{enricher: sekoia, signing_secret: "${{SLACK_SIGNING_SECRET}}"{allow}}}
routes:
  - {{name: r, match: {{type: alert}}, enrich: [sekoia], sinks: [chat]}}
"""


ENVIRON = {"SLACK_SIGNING_SECRET": SIGNING_SECRET}


def block_actions(
    slack: LoopbackServer, posted: dict[str, Any], action: str, user: str = "U0ALICE"
) -> dict[str, Any]:
    """What Slack sends when ``user`` clicks ``action`` on the message notirouter posted."""
    elements = [e for b in posted["blocks"] if b.get("type") == "actions" for e in b["elements"]]
    clicked: dict[str, Any]
    if action == "comment":
        [block] = [b for b in posted["blocks"] if b["type"] == "input"]
        clicked = {
            "type": "plain_text_input",
            "action_id": block["element"]["action_id"],
            "block_id": block["block_id"],
            "value": "Checked with the host owner: expected.",
        }
    else:
        [clicked] = [e for e in elements if e.get("action_id") == f"notirouter.{action}"]
    return {
        "type": "block_actions",
        "user": {"id": user, "username": "alice", "name": "alice", "team_id": "T0TEAM"},
        "container": {"type": "message", "message_ts": ROOT_TS, "channel_id": "C0ALERTS"},
        "channel": {"id": "C0ALERTS", "name": "alerts"},
        "message": {"ts": ROOT_TS, "text": posted["text"], "blocks": posted["blocks"]},
        "response_url": f"{slack.url}/response/T0TEAM/1/abc",
        "trigger_id": "1.2.3",
        "actions": [{**clicked, "action_ts": "1001.1"}],
    }


def signed(
    payload: dict[str, Any], *, secret: str = SIGNING_SECRET, at: float | None = None
) -> tuple[bytes, dict[str, str]]:
    body = urlencode({"payload": json.dumps(payload)}).encode()
    timestamp = str(int(time.time() if at is None else at))
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature(secret, timestamp, body),
    }
    return body, headers


async def click(served: Served, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as client,
        client.post(f"{served.url}/interactions/slack", data=body, headers=headers) as response,
    ):
        return response.status, await response.text()


async def until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():  # noqa: ASYNC110 (state of fakes in this process, polled)
            await asyncio.sleep(0.05)


async def posted_root(served: Served, fake: SlackFake) -> dict[str, Any]:
    await post_events(served, [alert_event("created")])
    await until(lambda: len(fake.calls) >= 1)
    return fake.calls[0].body


async def test_a_signed_acknowledge_is_written_back_once_and_shown(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    sekoia: FakeSekoia,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake = SlackFake()
    fake.install(loopback)
    path = write_config(slack_config(queue_backend, loopback, sekoia))
    async with serve(path, environ=ENVIRON) as served:
        root = await posted_root(served, fake)
        body, headers = signed(block_actions(loopback, root, "acknowledge"))
        assert await click(served, body, headers) == (200, "")
        await until(lambda: len(fake.calls) >= 3)
        await asyncio.sleep(0.3)  # nothing more comes
        records = await served.runtime.queue.interactions().results()
    [patch] = sekoia.patches
    assert patch["alert"] == ALERT_UUID
    assert patch["action_uuid"] == WORKFLOW_ACTIONS[0]["id"]  # "Acknowledge", found by name
    assert "@alice" in patch["comment"]
    [comment] = sekoia.posted_comments
    assert comment["author"] == "@alice" and "@alice" in comment["content"]
    assert fake.shape() == ["post", f"reply {ROOT_TS}", f"update {ROOT_TS}"]
    reply, edit = fake.calls[1].body, fake.calls[2].body
    assert reply["text"].startswith("Acknowledged by <@U0ALICE> at ")
    notes = [b for b in edit["blocks"] if b.get("block_id") == "notirouter.note"]
    assert notes and notes[0]["elements"][0]["text"] == reply["text"]
    [(_, sink, state, result)] = records
    recorded = json.loads(result)
    assert (sink, state, recorded["who"], recorded["what"]) == (
        "chat",
        "done",
        "U0ALICE",
        "acknowledge",
    )
    assert "HTTP 200" in recorded["answer"]
    # The operator's view of the record.
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["actions", "-c", str(path)]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert f"chat: alice acknowledge alert {ALERT_UUID}: done: done: Sekoia.io answered" in line


async def test_the_alert_message_carries_the_buttons(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    sekoia: FakeSekoia,
) -> None:
    fake = SlackFake()
    fake.install(loopback)
    path = write_config(slack_config(queue_backend, loopback, sekoia))
    async with serve(path, environ=ENVIRON) as served:
        root = await posted_root(served, fake)
    elements = [e for b in root["blocks"] if b.get("type") == "actions" for e in b["elements"]]
    by_id = {e.get("action_id", "link"): e for e in elements}
    assert set(by_id) == {"link", "notirouter.acknowledge", "notirouter.reject"}
    assert by_id["link"]["url"].startswith("https://app.sekoia.io/operations/alerts/")
    assert by_id["notirouter.reject"]["confirm"]["confirm"]["text"] == "Reject"
    assert [b["element"]["type"] for b in root["blocks"] if b["type"] == "input"] == [
        "plain_text_input"
    ]


@pytest.mark.parametrize("attack", ["bad signature", "stale timestamp", "replay", "unsigned"])
async def test_an_unauthenticated_click_is_401_and_changes_nothing(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    sekoia: FakeSekoia,
    attack: str,
) -> None:
    fake = SlackFake()
    fake.install(loopback)
    path = write_config(slack_config(queue_backend, loopback, sekoia))
    async with serve(path, environ=ENVIRON) as served:
        root = await posted_root(served, fake)
        payload = block_actions(loopback, root, "acknowledge")
        if attack == "bad signature":
            body, headers = signed(payload, secret="not-the-signing-secret")
        elif attack == "stale timestamp":
            body, headers = signed(payload, at=time.time() - 301)
        elif attack == "unsigned":
            body, headers = signed(payload)
            del headers["X-Slack-Signature"]
        else:
            body, headers = signed(payload)
            assert (await click(served, body, headers))[0] == 200
            await until(lambda: len(sekoia.patches) == 1 and len(fake.calls) >= 3)
        before = (len(sekoia.patches), len(sekoia.posted_comments), len(fake.calls))
        assert await click(served, body, headers) == (401, "")
        await asyncio.sleep(0.5)
        records = await served.runtime.queue.interactions().results()
    assert (len(sekoia.patches), len(sekoia.posted_comments), len(fake.calls)) == before
    assert len(records) == (1 if attack == "replay" else 0)


@pytest.mark.parametrize(
    ("status", "told"),
    [
        (409, "could not acknowledge: Sekoia.io refused the change (HTTP 409"),
        (403, "could not acknowledge: the Sekoia.io API key may not do this (HTTP 403"),
    ],
)
async def test_a_refused_transition_is_told_to_the_user_and_claims_nothing(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    sekoia: FakeSekoia,
    status: int,
    told: str,
) -> None:
    fake = SlackFake()
    fake.install(loopback)
    sekoia.write_failures = [Failure(status)]
    path = write_config(slack_config(queue_backend, loopback, sekoia))
    async with serve(path, environ=ENVIRON) as served:
        root = await posted_root(served, fake)
        assert (await click(served, *signed(block_actions(loopback, root, "acknowledge"))))[
            0
        ] == 200
        await until(lambda: len(fake.calls) >= 2)
        await asyncio.sleep(0.5)
        [(_, _, state, result)] = await served.runtime.queue.interactions().results()
    assert fake.shape() == ["post", "response_url"]  # no reply, no edit: nothing says done
    answer = fake.calls[1].body
    assert answer["response_type"] == "ephemeral" and answer["text"].startswith(told)
    assert sekoia.patches == [] and sekoia.posted_comments == []
    assert state == "failed" and json.loads(result)["outcome"] == "refused"


async def test_an_alert_whose_workflow_no_longer_offers_the_action_is_told_so(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    sekoia: FakeSekoia,
) -> None:
    fake = SlackFake()
    fake.install(loopback)
    # A closed alert, in a community whose workflow has its own names and uuids.
    sekoia.workflow_actions = [
        {"id": "0e1d2c3b-4a59-4687-a5b4-c3d2e1f00a99", "name": "Reopen", "description": ""}
    ]
    path = write_config(slack_config(queue_backend, loopback, sekoia))
    async with serve(path, environ=ENVIRON) as served:
        root = await posted_root(served, fake)
        assert (await click(served, *signed(block_actions(loopback, root, "acknowledge"))))[
            0
        ] == 200
        await until(lambda: len(fake.calls) >= 2)
        await asyncio.sleep(0.3)
    assert fake.shape() == ["post", "response_url"]
    assert fake.calls[1].body["text"] == (
        "could not acknowledge: the alert's workflow offers no Acknowledge action now"
        " (offered: Reopen)"
    )
    assert sekoia.patches == []


async def test_sekoia_down_is_told_retried_and_then_done(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    sekoia: FakeSekoia,
) -> None:
    fake = SlackFake()
    fake.install(loopback)
    sekoia.write_failures = [Failure(503, times=2)]
    path = write_config(slack_config(queue_backend, loopback, sekoia))
    async with serve(path, environ=ENVIRON) as served:
        root = await posted_root(served, fake)
        assert (await click(served, *signed(block_actions(loopback, root, "acknowledge"))))[
            0
        ] == 200
        await until(lambda: len(fake.calls) >= 4)
        await asyncio.sleep(0.3)
        [(_, _, state, _)] = await served.runtime.queue.interactions().results()
    # Told once that it is being retried, then the real outcome; one PATCH got through.
    assert fake.shape() == ["post", "response_url", f"reply {ROOT_TS}", f"update {ROOT_TS}"]
    assert (
        fake.calls[1]
        .body["text"]
        .startswith("could not acknowledge yet: Sekoia.io is unavailable (HTTP 503); trying again")
    )
    assert len(sekoia.patches) == 1 and len(sekoia.posted_comments) == 1
    assert state == "done"


async def test_reject_and_comment_are_written_back(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    sekoia: FakeSekoia,
) -> None:
    fake = SlackFake()
    fake.install(loopback)
    path = write_config(slack_config(queue_backend, loopback, sekoia))
    async with serve(path, environ=ENVIRON) as served:
        root = await posted_root(served, fake)
        assert (await click(served, *signed(block_actions(loopback, root, "reject"))))[0] == 200
        await until(lambda: len(fake.calls) >= 3)
        assert (await click(served, *signed(block_actions(loopback, root, "comment"))))[0] == 200
        await until(lambda: len(fake.calls) >= 5)
    [patch] = sekoia.patches
    assert patch["action_uuid"] == WORKFLOW_ACTIONS[1]["id"]  # "Reject", found by name
    assert [c["content"] for c in sekoia.posted_comments][1] == (
        "Checked with the host owner: expected."
    )
    assert fake.calls[1].body["text"].startswith("Rejected as a false positive by <@U0ALICE>")
    assert fake.calls[3].body["text"].startswith("Commented by <@U0ALICE>")


@pytest.mark.parametrize(("user", "allowed"), [("U0ALICE", True), ("U0MALLORY", False)])
async def test_a_slack_user_group_in_the_allow_list_admits_its_members(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    sekoia: FakeSekoia,
    user: str,
    allowed: bool,
) -> None:
    fake = SlackFake(user_groups={"S0SOC": ["U0BOB", "U0ALICE"]})
    fake.install(loopback)
    path = write_config(slack_config(queue_backend, loopback, sekoia, ", allow: [U0BOB, S0SOC]"))
    async with serve(path, environ=ENVIRON) as served:
        root = await posted_root(served, fake)
        payload = block_actions(loopback, root, "acknowledge", user=user)
        assert (await click(served, *signed(payload)))[0] == 200
        await until(lambda: len(fake.calls) >= (4 if allowed else 3))
        await asyncio.sleep(0.3)
    assert fake.calls[1].method == "usergroups.users.list"
    assert fake.calls[1].body == {"usergroup": "S0SOC"}
    if allowed:
        assert fake.shape()[2:] == [f"reply {ROOT_TS}", f"update {ROOT_TS}"]
        assert len(sekoia.patches) == 1
    else:
        assert fake.shape()[2:] == ["response_url"]
        assert sekoia.patches == []


async def test_a_user_outside_the_allow_list_is_refused(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    sekoia: FakeSekoia,
) -> None:
    fake = SlackFake()
    fake.install(loopback)
    path = write_config(slack_config(queue_backend, loopback, sekoia, ", allow: [U0BOB]"))
    async with serve(path, environ=ENVIRON) as served:
        root = await posted_root(served, fake)
        assert (await click(served, *signed(block_actions(loopback, root, "acknowledge"))))[
            0
        ] == 200
        await until(lambda: len(fake.calls) >= 2)
        await asyncio.sleep(0.3)
    assert fake.shape() == ["post", "response_url"]
    assert "not allowed" in fake.calls[1].body["text"]
    assert sekoia.patches == []


MM_SECRET = "mattermost-button-secret-0123456789"
CHANNEL_ID = "c" * 26
ALICE_ID = "a" * 26
ROOT_POST = f"p{1:025d}"


def mattermost_config(
    backend: Backend, mattermost: LoopbackServer, sekoia: FakeSekoia, public_url: str
) -> str:
    return f"""
hooks: [{{name: sekoia, token: {TOKEN}}}]
queue: {backend.yaml()}
delivery: {{backoff_initial: 50ms, backoff_max: 200ms, lease: 30s, route_workers: 1}}
enrichers:
  sekoia: {{type: sekoia, api_key: {API_KEY}, base_url: "{sekoia.url}", region: fra1,
            attempts: 1}}
sinks:
  chat:
    type: mattermost
    server_url: "{mattermost.url}"
    token: mm-test-token
    channel_id: {CHANNEL_ID}
    rate_limit: 0
    actions: {{enricher: sekoia, public_url: "{public_url}",
               secret: "${{MM_SECRET}}"}}
routes:
  - {{name: r, match: {{type: alert}}, enrich: [sekoia], sinks: [chat]}}
"""


def mm_button(fake: MattermostFake, action: str) -> dict[str, Any]:
    [patch] = [c for c in fake.calls if c.method == "PUT"][:1]
    [attachment] = patch.body["props"]["attachments"]
    [button] = [a for a in attachment["actions"] if a["id"] == f"notirouter{action}"]
    return button


def mm_click(button: dict[str, Any], post_id: str = ROOT_POST) -> dict[str, Any]:
    """What Mattermost POSTs to the button's integration URL."""
    return {
        "user_id": ALICE_ID,
        "user_name": "alice",
        "channel_id": CHANNEL_ID,
        "team_id": "t" * 26,
        "post_id": post_id,
        "trigger_id": "trigger",
        "type": "",
        "data_source": "",
        "context": button["integration"]["context"],
    }


def shown(markdown: str) -> str:
    """Mattermost Markdown as read: entities decoded, backslash escapes dropped."""
    return html.unescape(markdown).replace("\\", "")


async def mm_post(served: Served, body: dict[str, Any]) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as client,
        client.post(f"{served.url}/interactions/mattermost", json=body) as response,
    ):
        return response.status, await response.text()


@pytest.fixture
async def mattermost_served(
    queue_backend: Backend, write_config: Callable[..., Path], sekoia: FakeSekoia
) -> AsyncIterator[tuple[Served, MattermostFake]]:
    fake = MattermostFake()
    server = LoopbackServer()
    await server.start()
    fake.install(server)
    # The buttons name notirouter's public address: the port is known once it listens, so the
    # config names a fixed placeholder that the test checks, and clicks go to the real port.
    path = write_config(
        mattermost_config(queue_backend, server, sekoia, "https://notirouter.example")
    )
    try:
        async with serve(path, environ={"MM_SECRET": MM_SECRET}) as served:
            await post_events(served, [alert_event("created")])
            await until(lambda: len(fake.calls) >= 2)
            yield served, fake
    finally:
        await server.stop()


async def test_mattermost_acknowledge_with_its_signed_token(
    mattermost_served: tuple[Served, MattermostFake], sekoia: FakeSekoia
) -> None:
    served, fake = mattermost_served
    assert fake.shape() == ["post", f"patch {ROOT_POST}"]  # posted, then given its buttons
    button = mm_button(fake, "acknowledge")
    assert button["integration"]["url"] == "https://notirouter.example/interactions/mattermost"
    assert MM_SECRET not in json.dumps(fake.calls[1].body)
    status, text = await mm_post(served, mm_click(button))
    assert status == 200 and "outcome follows" in json.loads(text)["ephemeral_text"]
    await until(lambda: len(fake.calls) >= 4)
    await asyncio.sleep(0.3)
    [patch] = sekoia.patches
    assert patch["action_uuid"] == WORKFLOW_ACTIONS[0]["id"]
    assert [c["author"] for c in sekoia.posted_comments] == ["@alice"]
    assert fake.shape()[2:] == [f"reply {ROOT_POST}", f"patch {ROOT_POST}"]
    assert fake.calls[2].body["message"].startswith("Acknowledged by @alice at ")
    footer = fake.calls[3].body["props"]["attachments"][0]["footer"]
    assert footer.startswith("Acknowledged by @alice at ")


@pytest.mark.parametrize("forgery", ["other message", "other action", "other alert", "no token"])
async def test_mattermost_a_token_for_another_message_is_401(
    mattermost_served: tuple[Served, MattermostFake], sekoia: FakeSekoia, forgery: str
) -> None:
    served, fake = mattermost_served
    body = mm_click(mm_button(fake, "acknowledge"))
    context = body["context"]
    if forgery == "other message":
        body["post_id"] = context["post"] = f"p{9:025d}"
    elif forgery == "other action":
        context["action"] = "reject"
    elif forgery == "other alert":
        context["alert"] = "00000000-0000-4000-8000-000000000000"
    else:
        del context["token"]
    assert await mm_post(served, body) == (401, "")
    await asyncio.sleep(0.5)
    assert sekoia.patches == [] and sekoia.posted_comments == []
    assert len(fake.calls) == 2
    assert await served.runtime.queue.interactions().results() == []


async def test_mattermost_reject_needs_a_second_click(
    mattermost_served: tuple[Served, MattermostFake], sekoia: FakeSekoia
) -> None:
    served, fake = mattermost_served
    body = mm_click(mm_button(fake, "reject"))
    status, text = await mm_post(served, body)
    assert status == 200 and "again within 2 minutes" in json.loads(text)["ephemeral_text"]
    await asyncio.sleep(0.5)
    assert sekoia.patches == []
    assert (await mm_post(served, body))[0] == 200
    await until(lambda: len(sekoia.patches) == 1 and len(fake.calls) >= 4)
    assert sekoia.patches[0]["action_uuid"] == WORKFLOW_ACTIONS[1]["id"]


async def test_mattermost_a_refusal_is_an_ephemeral_answer(
    mattermost_served: tuple[Served, MattermostFake], sekoia: FakeSekoia
) -> None:
    served, fake = mattermost_served
    sekoia.write_failures = [Failure(409)]
    assert (await mm_post(served, mm_click(mm_button(fake, "acknowledge"))))[0] == 200
    await until(lambda: len(fake.calls) >= 3)
    await asyncio.sleep(0.3)
    assert fake.shape()[2:] == ["ephemeral"]
    told = fake.calls[2].body
    assert told["user_id"] == ALICE_ID
    assert shown(told["post"]["message"]).startswith("could not acknowledge: Sekoia.io refused")


async def test_mattermost_without_ephemeral_permission_answers_in_the_thread(
    mattermost_served: tuple[Served, MattermostFake], sekoia: FakeSekoia
) -> None:
    served, fake = mattermost_served
    fake.ephemeral_allowed = False
    sekoia.write_failures = [Failure(403)]
    assert (await mm_post(served, mm_click(mm_button(fake, "acknowledge"))))[0] == 200
    await until(lambda: len(fake.calls) >= 4)
    await asyncio.sleep(0.3)
    assert fake.shape()[2:] == ["ephemeral", f"reply {ROOT_POST}"]  # refused, then the thread
    assert shown(fake.calls[3].body["message"]).startswith(
        "could not acknowledge: the Sekoia.io API key may not do this (HTTP 403"
    )
    assert sekoia.patches == []
