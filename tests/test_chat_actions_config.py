"""Chat actions as an operator configures and checks them: errors at file:line:col with no
secret, ``check`` lines per sink, ``check --connect`` on the key's write permissions, the
endpoint's size limit, and no secret in any log line."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from notirouter.cli import main
from notirouter.config.errors import ConfigError
from notirouter.config.loader import load_config
from tests.backends import Backend
from tests.chat_api_fakes import SlackFake
from tests.loopback import LoopbackServer
from tests.sekoia_fixtures import API_KEY, FakeSekoia
from tests.serving import serve
from tests.test_chat_actions import (
    ENVIRON,
    SIGNING_SECRET,
    block_actions,
    click,
    posted_root,
    signed,
    slack_config,
    until,
)

SECRET = "a-signing-secret-never-shown-0001"


@pytest.fixture
async def sekoia_api() -> AsyncIterator[FakeSekoia]:
    server = LoopbackServer()
    await server.start()
    yield FakeSekoia(server)
    await server.stop()


BASE = """
hooks: [{name: s, token: test-token-0123456789abcdef}]
enrichers:
  sekoia: {type: sekoia, api_key: sk-key-0001, region: fra1}
  other: {type: sekoia, api_key: sk-key-0002, region: fra1}
sinks:
"""


@pytest.mark.parametrize(
    ("sink", "problem", "where"),
    [
        (
            "  chat: {type: slack, token: xoxb-1, channel: C1,"
            f" actions: {{enricher: nowhere, signing_secret: {SECRET}}}}}",
            "sinks.chat.actions.enricher: no enricher 'nowhere' (configured: other, sekoia)",
            ":6:71:",  # the enricher's name
        ),
        (
            "  chat: {type: slack, token: xoxb-1, channel: C1, actions: {enricher: sekoia}}",
            "signing_secret",
            ":6:",
        ),
        (
            '  chat: {type: slack, url: "https://hooks.slack.com/services/T/B/x",'
            f" actions: {{enricher: sekoia, signing_secret: {SECRET}}}}}",
            "actions need token and channel",
            ":6:",
        ),
        (
            '  chat: {type: mattermost, server_url: "https://chat.example", token: t,'
            f" channel_id: {'c' * 26}, actions: {{enricher: sekoia, public_url:"
            f' "http://notirouter.example", secret: {SECRET}}}}}',
            "public_url",
            ":6:",
        ),
    ],
)
def test_bad_actions_are_located_and_keep_secrets(
    write_config: Callable[..., Path], sink: str, problem: str, where: str
) -> None:
    text = BASE + sink + "\nroutes: [{name: r, sinks: [chat]}]\n"
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(text), environ={})
    message = str(caught.value)
    assert problem in message
    assert where in message
    assert SECRET not in message


def test_check_names_what_each_sink_can_do(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    text = (
        BASE
        + f"""
  slack: {{type: slack, token: xoxb-1, channel: C1,
           actions: {{enricher: sekoia, signing_secret: {SECRET}}}}}
  mm: {{type: mattermost, server_url: "https://chat.example", token: t, channel_id: {"c" * 26},
        actions: {{enricher: sekoia, public_url: "https://notirouter.example",
                   secret: {SECRET}}}}}
  teams: {{type: teams, url: "https://prod-01.westeurope.logic.azure.com/workflows/x"}}
  mail: {{type: email, host: smtp.example, from: a@example.com, to: [b@example.com]}}
routes: [{{name: r, sinks: [slack, mm, teams, mail]}}]
"""
    )
    assert main(["check", "-c", str(write_config(text))]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert lines == [
        "sink slack: conversation: update+thread",
        "sink slack: actions: acknowledge, reject (confirmed), comment,"
        " via POST /interactions/slack",
        "sink mm: conversation: update+thread",
        "sink mm: actions: acknowledge, reject (second click confirms), no comment (attachments"
        " have no input), via https://notirouter.example/interactions/mattermost",
        "sink teams: posts every message: a Workflows webhook cannot edit, reply or return an id",
        "sink teams: actions: none: a Workflows webhook's cards cannot call back (only links)",
        "sink mail: conversation: thread (In-Reply-To/References); a sent mail cannot be edited",
        "sink mail: actions: none: email carries the alert link only",
    ]


@pytest.mark.parametrize(
    ("me", "said"),
    [
        (
            {"uuid": "u", "permissions": ["SIC_READ_ALERTS", "SIC_WRITE_ALERTS_WORKFLOW"]},
            "the API key lacks SIC_WRITE_ALERTS_COMMENT: chat actions will be refused",
        ),
        (
            {
                "uuid": "u",
                "permissions": [
                    {"name": "SIC_WRITE_ALERTS_WORKFLOW"},
                    {"name": "SIC_WRITE_ALERTS_COMMENT"},
                ],
            },
            "may write back",
        ),
        ({"uuid": "u"}, "the API key works; /v1/me does not list its permissions"),
    ],
)
async def test_check_connect_says_whether_the_key_may_write(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    me: dict[str, object],
    said: str,
) -> None:
    sekoia = FakeSekoia(loopback)
    sekoia.me = me
    path = write_config(slack_config(queue_backend, loopback, sekoia))
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
    assert await asyncio.to_thread(main, ["migrate", "-c", str(path)]) == 0
    capsys.readouterr()
    # In a thread: the command runs its own event loop, the fake answers on this one.
    assert await asyncio.to_thread(main, ["check", "--connect", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"actions via enricher sekoia (chat): {said}" in out
    assert API_KEY not in out
    assert any(r.path == "/v1/me" for r in loopback.requests)


async def test_a_large_body_is_413_and_secrets_never_reach_the_log(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    sekoia_api: FakeSekoia,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    fake = SlackFake()
    fake.install(loopback)
    sekoia = sekoia_api
    path = write_config(slack_config(queue_backend, loopback, sekoia))
    async with serve(path, environ=ENVIRON) as served:
        root = await posted_root(served, fake)
        async with (
            aiohttp.ClientSession() as client,
            client.post(f"{served.url}/interactions/slack", data=b"x" * 300_000) as response,
        ):
            assert response.status == 413
        body, headers = signed(block_actions(loopback, root, "acknowledge"))
        assert (await click(served, body, headers))[0] == 200
        await until(lambda: len(fake.calls) >= 3)
        bad, bad_headers = signed(block_actions(loopback, root, "acknowledge"), secret="wrong")
        assert (await click(served, bad, bad_headers))[0] == 401
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "acknowledge" in logged  # the action is logged...
    for secret in (SIGNING_SECRET, API_KEY, "xoxb-test-token", headers["X-Slack-Signature"]):
        assert secret not in logged  # ...never a secret, nor a signature
