"""``rate_limit: 0`` turns a sink type's default rate limit off; ``null`` keeps the default."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from notirouter.api.http import HttpClient
from notirouter.api.sink import SinkContext
from notirouter.cli import main
from notirouter.config.loader import load_config
from tests.conftest import TOKEN
from tests.loopback import LoopbackServer
from tests.serving import event, post_events, serve


def slack_config(db: Path, url: str, rate_limit: str) -> str:
    return f"""
hooks:
  - {{name: sekoia, token: {TOKEN}}}
queue: {{path: "{db}"}}
sinks:
  chat:
    type: slack
    url: "{url}/services/T000/B000/XXXXXXXXXXXXXXXX"
    {rate_limit}
routes:
  - {{name: r, sinks: [chat]}}
"""


@pytest.mark.parametrize(
    ("setting", "expected"),
    [("", 1.0), ("rate_limit: null", 1.0), ("rate_limit: 0", None), ("rate_limit: 2.5", 2.5)],
)
def test_the_loader_reads_the_rate_limit(
    tmp_path: Path,
    write_config: Callable[..., Path],
    http_client: HttpClient,
    setting: str,
    expected: float | None,
) -> None:
    path = write_config(slack_config(tmp_path / "q.db", "https://hooks.slack.com", setting))
    config = load_config(path)
    sink_type = config.types.sinks["slack"]
    options = config.sink_options["chat"]
    assert sink_type.default_rate_limit == 1.0
    sink = sink_type("chat", options, SinkContext(name="chat", http=http_client))
    assert sink.rate_limit == expected


def test_a_negative_rate_limit_is_an_error_with_its_position(
    tmp_path: Path, write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(
        slack_config(tmp_path / "q.db", "https://hooks.slack.com", "rate_limit: -1")
    )
    assert main(["check", "-c", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:8:" in err and "rate_limit" in err


async def test_rate_limit_0_delivers_without_the_types_default_spacing(
    tmp_path: Path, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    # Slack's default is 1 message per second, burst 1: five messages would take 4 s or more.
    path = write_config(slack_config(tmp_path / "q.db", loopback.url, "rate_limit: 0"))
    async with serve(path) as served:
        await post_events(served, [event(n) for n in range(5)])
        requests = await loopback.wait_for(5, timeout=3)
    assert len(requests) == 5
