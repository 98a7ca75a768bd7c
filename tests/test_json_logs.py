"""``logging: {format: json}``: the real ``notirouter serve`` writes one JSON object per line."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from notirouter.cli import main
from notirouter.config.models import QueueConfig
from notirouter.logs import JsonFormatter
from tests.backends import Backend
from tests.conftest import TOKEN
from tests.loopback import LoopbackServer, Reply
from tests.serve_process import free_port
from tests.serving import config as delivery_config
from tests.serving import event as delivery_event
from tests.serving import post_events, serve

# Outside text that tries to end the line, forge a record and clear the terminal.
FORGED = '\n{"level": "INFO", "message": "forged"}\x1b[2J\r\u202e'
REPLY_MARKER = "reply-marker-4f1"
ACTION_MARKER = "action-marker-9c2"


async def run_serve(
    config: Path, port: int, stderr: Path, stdout: Path, *flags: str
) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "notirouter",
            "serve",
            "-c",
            str(config),
            "--port",
            str(port),
            *flags,
        ],
        stdout=stdout.open("wb"),
        stderr=stderr.open("wb"),
    )
    async with aiohttp.ClientSession() as client:
        for _ in range(200):
            try:
                async with client.get(f"http://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200:
                        return process
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    process.kill()
    raise RuntimeError(stderr.read_text())


def json_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of ``path`` parsed as a JSON object (failing on the first that is not one)."""
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        assert isinstance(record, dict), line
        records.append(record)
    return records


async def wait_for_line(path: Path, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    for _ in range(200):
        for record in json_lines(path):
            if wanted(record):
                return record
        await asyncio.sleep(0.05)
    raise AssertionError(f"no such line in:\n{path.read_text()}")


async def test_serve_writes_json_lines_with_delivery_fields_redacted_and_inert(
    tmp_path: Path, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    # The first answer quotes the hook token (a secret the sink does not know) and hostile text.
    loopback.reply(Reply(500, f"{REPLY_MARKER} {TOKEN} {FORGED}"), Reply(200, "ok"))
    config = write_config(
        f"""
        logging: {{format: json, level: debug}}
        hooks:
          - {{name: sekoia, token: {TOKEN}}}
        queue: {{path: "{tmp_path / "q.db"}"}}
        delivery: {{backoff_initial: 50ms, backoff_max: 100ms}}
        sinks:
          forward: {{type: webhook, url: "{loopback.url}"}}
        routes:
          - {{name: everything, sinks: [forward]}}
        """
    )
    port = free_port()
    stderr, stdout = tmp_path / "stderr.log", tmp_path / "stdout.log"
    process = await run_serve(config, port, stderr, stdout)
    try:
        event = {
            "type": "alert",
            "action": f"{ACTION_MARKER}{FORGED}",
            "attributes": {"uuid": "u1"},
            "metadata": {"uuid": "m1"},
        }
        url = f"http://127.0.0.1:{port}/hooks/{TOKEN}"
        async with aiohttp.ClientSession() as client, client.post(url, json=event) as answer:
            assert answer.status == 202
            event_id = (await answer.json())["id"]
        delivered = await wait_for_line(stderr, lambda r: r.get("outcome") == "delivered")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)

    assert delivered["event_id"] == event_id
    assert delivered["route"] == "everything"
    assert delivered["sink"] == "forward"
    assert delivered["logger"] == "notirouter.delivery"
    assert delivered["level"] == "INFO"
    assert isinstance(delivered["latency_ms"], int | float) and delivered["latency_ms"] >= 0
    assert delivered["time"].endswith("Z") and "T" in delivered["time"]

    raw = stderr.read_text(encoding="utf-8")
    records = json_lines(stderr)  # every line of the process log is one JSON object
    assert json_lines(stdout) == []  # the process log is not mixed into stdout
    assert TOKEN not in raw
    assert "\x1b" not in raw and "\r" not in raw and "\u202e" not in raw
    # The failed attempt's line quotes the service's answer: one line, the text kept as data.
    [retried] = [r for r in records if REPLY_MARKER in raw_line(r)]
    assert retried["outcome"] == "retry" and retried["event_id"] == event_id
    assert '{"level": "INFO", "message": "forged"}\x1b[2J' in retried["message"]
    assert "***" in retried["message"]  # the hook token, redacted from the message field
    # The event's own text reached a line too (the routing line names its action): one line.
    quoting_event = [r for r in records if ACTION_MARKER in r["message"]]
    assert quoting_event and all(FORGED in r["message"] for r in quoting_event)
    assert not any(r["message"] == "forged" for r in records)


def raw_line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False)


async def test_cli_flags_override_the_config(
    tmp_path: Path, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    config = write_config(
        f"""
        hooks:
          - {{name: sekoia, token: {TOKEN}}}
        queue: {{path: "{tmp_path / "q.db"}"}}
        sinks:
          forward: {{type: webhook, url: "{loopback.url}"}}
        routes:
          - {{name: everything, sinks: [forward]}}
        """
    )
    port = free_port()
    stderr, stdout = tmp_path / "stderr.log", tmp_path / "stdout.log"
    flags = ("--log-format", "json", "--log-level", "debug")
    process = await run_serve(config, port, stderr, stdout, *flags)
    try:
        async with aiohttp.ClientSession() as client:
            body = {"type": "alert", "action": "created", "attributes": {}, "metadata": {}}
            async with client.post(f"http://127.0.0.1:{port}/hooks/{TOKEN}", json=body) as answer:
                assert answer.status == 202
                event_id = (await answer.json())["id"]
        routed = await wait_for_line(stderr, lambda r: r.get("outcome") == "routed")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
    assert routed["level"] == "DEBUG"
    assert routed["event_id"] == event_id
    assert routed["routes"] == ["everything"]


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("logging: {format: xml}", "format"),
        ("logging: {level: loud}", "level"),
        ("logging: {colour: true}", "colour"),
    ],
)
def test_bad_logging_settings_are_config_errors_with_a_position(
    write_config: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    section: str,
    message: str,
) -> None:
    path = write_config(f"hooks: []\n{section}\n")
    assert main(["check", "-c", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:2:" in err
    assert message in err


def test_every_field_is_redacted_even_where_json_would_escape_the_secret() -> None:
    secret = 'pa"ss\\word-0123'  # JSON writes it as pa\"ss\\word: a redaction of the line misses it
    formatter = JsonFormatter([secret])
    try:
        raise ValueError(f"login failed with {secret}")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "notirouter.x", logging.ERROR, __file__, 1, "using %s", (secret,), exc_info
    )
    record.sink = f"mail {secret}"
    record.routes = [secret, "ok"]
    line = formatter.format(record)
    parsed = json.loads(line)
    assert "word-0123" not in line
    assert parsed["message"] == "using ***"
    assert parsed["sink"] == "mail ***"
    assert parsed["routes"] == ["***", "ok"]
    assert "login failed with ***" in parsed["exception"]
    assert "\n" not in line


async def test_a_delivery_given_up_is_logged_with_outcome_dead(
    tmp_path: Path,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    loopback.reply(Reply(503, "down"))
    sinks = f'  forward: {{type: webhook, url: "{loopback.url}"}}'
    path = write_config(
        delivery_config(
            Backend("sqlite", QueueConfig(path=str(tmp_path / "q.db"))),
            sinks,
            "  - {name: r, sinks: [forward]}",
            ", max_age: 1s",
        )
    )
    caplog.set_level(logging.INFO, logger="notirouter.delivery")
    async with serve(path) as served:
        await post_events(served, [delivery_event(1)])
        for _ in range(500):  # at most 10 s
            if any(r.__dict__.get("outcome") == "dead" for r in caplog.records):
                break
            await asyncio.sleep(0.02)
    [dead] = [r for r in caplog.records if r.__dict__.get("outcome") == "dead"]
    assert dead.levelno == logging.ERROR
    assert (dead.__dict__["sink"], dead.__dict__["route"]) == ("forward", "r")
    assert "gave up after" in dead.getMessage()
