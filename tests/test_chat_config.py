"""The chat sinks as an operator uses them: from YAML, behind a templated route."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web

from notirouter.api.sink import Outcome
from notirouter.config.errors import ConfigError
from notirouter.config.loader import load_config
from notirouter.runtime import Runtime
from tests.chat_helpers import SECRET
from tests.loopback import LoopbackServer

# Each service's success answer, as the real one gives it.
SUCCESS = {
    "teams": web.Response(status=202),
    "mattermost": web.Response(status=200, text="ok"),
    "slack": web.Response(status=200, text="ok"),
    "discord": web.Response(status=204),
}
EVENT = {
    "type": "alert",
    "action": "created",
    "attributes": {
        "uuid": "5696845f-9ecf-4431-9f0f-48ee0ee2eff1",
        "short_id": "ALEY4fqz8moo",
        "host": "@channel [pwned](https://evil.example/x)",
    },
    "metadata": {"version": 2, "uuid": "7f0b1c2d-0000-4000-8000-000000000001"},
}
CONFIG = """
hooks:
  - {{name: sekoia, token: test-token-0123456789abcdef, source: sekoia}}
queue: {{path: {db}}}
sinks:
  teams: {{type: teams, url: "{base}/teams/{secret}"}}
  mattermost: {{type: mattermost, url: "{base}/mattermost/{secret}", channel: soc}}
  slack: {{type: slack, url: "{base}/slack/{secret}"}}
  discord: {{type: discord, url: "{base}/discord/{secret}"}}
routes:
  - name: alerts
    match: {{type: alert}}
    title: "Alert {{{{ attributes.short_id }}}} on {{{{ attributes.host }}}}"
    facts: {{Host: "{{{{ attributes.host }}}}"}}
    sinks: [teams, mattermost, slack, discord]
"""


async def test_templated_route_reaches_every_chat_sink_escaped(
    loopback: LoopbackServer, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    loopback.handler = lambda request, body: SUCCESS[request.path.split("/")[1]]
    path = write_config(CONFIG.format(base=loopback.url, secret=SECRET, db=tmp_path / "queue.db"))
    runtime = Runtime(load_config(path, environ={}))
    await runtime.open_plugins()
    try:
        event = runtime.pipeline.parse("sekoia", EVENT)
        routed = await runtime.pipeline.route(event, enrich=False)
        ((route, message),) = routed.messages
        assert message.title == "Alert ALEY4fqz8moo on @channel [pwned](https://evil.example/x)"
        for name in route.sinks:
            result = await runtime.sinks[name].send(message)
            assert result.outcome is Outcome.DELIVERED, (name, result.detail)
    finally:
        await runtime.close_plugins()
    assert sorted(r.path.split("/")[1] for r in loopback.requests) == sorted(SUCCESS)
    for request in loopback.requests:
        body = request.body.decode()
        assert "ALEY4fqz8moo" in body
        # "@\u200bchannel" as JSON escapes or raw; Discord shows a "\@channel" as text.
        assert not re.search(r"(?<!\\\\)@channel", body)
        assert "https://evil" not in body


@pytest.mark.parametrize(
    ("sink", "problem"),
    [
        ("{type: teams, url: URL, format: adaptive}", "format"),
        ("{type: teams, url: URL, card_version: '2.0'}", "card_version"),
        ("{type: slack, url: URL, channel: '#soc'}", "channel"),
        ("{type: mattermost, url: URL, icon_emoji: 'not an emoji'}", "icon_emoji"),
        ("{type: discord, url: URL, thread_id: abc}", "thread_id"),
        ("{type: discord, url: 'ftp://chat.example.com/SECRET'}", "url"),
    ],
)
def test_bad_chat_options_are_reported_with_position_and_no_secret(
    write_config: Callable[..., Path], sink: str, problem: str
) -> None:
    url = f"https://chat.example.com/hooks/{SECRET}"
    text = f"""
        hooks: [{{name: s, token: test-token-0123456789abcdef, source: sekoia}}]
        sinks:
          chat: {sink.replace("URL", repr(url)).replace("SECRET", SECRET)}
        routes: [{{name: r, match: {{type: "*"}}, sinks: [chat]}}]
    """
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(text), environ={})
    message = str(caught.value)
    assert problem in message
    assert ":3:" in message  # the sink's line
    assert SECRET not in message


def test_every_chat_sink_is_a_builtin() -> None:
    from notirouter.plugins import DEFAULT_PLUGINS

    names = {name for name, _ in DEFAULT_PLUGINS}
    assert {"teams", "mattermost", "slack", "discord"} <= names
