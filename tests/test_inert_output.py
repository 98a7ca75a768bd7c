"""Outside text reaches log lines and ``dead list`` inert: no forged line, no ANSI escape."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from notirouter.cli import main
from notirouter.logs import RedactingFormatter
from notirouter.queue.sqlite.queue import SqliteQueue
from tests.conftest import TOKEN
from tests.loopback import LoopbackServer, Reply
from tests.serving import serve

# Clears the screen, sets the terminal title, and a one-byte C1 CSI (0x9b).
ANSI = "\x1b[2J\x1b]0;pwned\x07\x9b31m"


def config_text(db: Path, sink_url: str) -> str:
    return f"""
hooks:
  - {{name: sekoia, token: {TOKEN}, source: sekoia}}
queue: {{path: "{db}"}}
sinks:
  forward: {{type: webhook, url: "{sink_url}/notify"}}
routes:
  - {{name: all, match: {{type: "*"}}, sinks: [forward]}}
"""


async def raw_request(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(5):
            return await reader.read(65536)
    finally:
        writer.close()


async def test_a_path_cannot_forge_an_access_log_line_or_send_escapes(
    tmp_path: Path,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="notirouter.access")
    async with serve(write_config(config_text(tmp_path / "q.db", loopback.url))) as served:
        port = int(served.url.rsplit(":", 1)[1])
        forged = "/x%0D%0A2026-12-02 09:00:00,000 INFO notirouter.access: 10.0.0.1%1B[2J%C2%9B"
        answer = await raw_request(
            port, f"GET {forged.replace(' ', '%20')} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        )
        assert answer.startswith(b"HTTP/1.1 404")
    [line] = [r.getMessage() for r in caplog.records if r.name == "notirouter.access"]
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\x9b" not in line
    assert "/x\\r\\n2026-12-02 09:00:00,000 INFO notirouter.access: 10.0.0.1\\x1b[2J\\x9b" in line


def test_log_lines_escape_newlines_and_controls_but_tracebacks_keep_their_lines() -> None:
    formatter = RedactingFormatter("%(levelname)s %(message)s", ["T0KEN-SECRET"])
    try:
        raise ValueError(f"bad type {ANSI}")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "x",
        logging.ERROR,
        __file__,
        1,
        "event of type %s from %s",
        ("alert\nERROR forged line" + ANSI, "T0KEN-SECRET"),
        exc_info,
    )
    text = formatter.format(record)
    first, *traceback = text.split("\n")
    assert first == (
        "ERROR event of type alert\\nERROR forged line\\x1b[2J\\x1b]0;pwned\\x07\\x9b31m from ***"
    )
    assert traceback[0] == "Traceback (most recent call last):"
    assert traceback[-1] == "ValueError: bad type \\x1b[2J\\x1b]0;pwned\\x07\\x9b31m"
    assert "\x1b" not in text and "\x9b" not in text


async def run(argv: list[str]) -> int:
    return await asyncio.to_thread(main, argv)


async def test_an_answer_with_ansi_escapes_reaches_dead_list_inert(
    tmp_path: Path,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    loopback.reply(Reply(400, f"{ANSI}invalid payload"))
    path = write_config(config_text(tmp_path / "q.db", loopback.url))
    async with serve(path) as served:
        await served.runtime.queue.enqueue(
            hook="sekoia", source="sekoia", dedupe_key="k", body=b'{"type":"a","action":"b"}'
        )
        await loopback.wait_for(1)
        for _ in range(500):
            with sqlite3.connect(tmp_path / "q.db") as connection:
                [(dead,)] = connection.execute(
                    "SELECT COUNT(*) FROM deliveries WHERE state = 'dead'"
                )
            if dead:
                break
            await asyncio.sleep(0.02)
    capsys.readouterr()
    assert await run(["dead", "list", "-c", str(path)]) == 0
    listed = capsys.readouterr().out
    assert "\x1b" not in listed and "\x07" not in listed and "\x9b" not in listed
    assert listed.rstrip("\n").endswith(
        "HTTP 400: \\x1b[2J\\x1b]0;pwned\\x07\\x9b31minvalid payload"
    )
    assert await run(["dead", "list", "--json", "-c", str(path)]) == 0
    printed = capsys.readouterr().out
    assert "\x9b" not in printed
    [row] = json.loads(printed)
    assert row["error"] == f"HTTP 400: {ANSI}invalid payload"  # escaped, not altered


async def test_dead_show_prints_an_event_stored_with_surrogate_bytes(
    tmp_path: Path, write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(f'queue: {{path: "{tmp_path / "q.db"}"}}\n')
    queue = SqliteQueue(tmp_path / "q.db")
    await queue.open()
    # Raw ED A0 80 (U+D800 as bytes), as an earlier version accepted it.
    body = b'{"type": "alert", "action": "created", "attributes": {"title": "\xed\xa0\x80"}}'
    stored = await queue.enqueue(hook="sekoia", source="sekoia", dedupe_key="k", body=body)
    [event] = await queue.claim_events(1, 30)
    await queue.retry_event(event, 0, "cannot parse: the body is not UTF-8", dead=True)
    await queue.close()
    assert await run(["dead", "show", "-c", str(path), stored.id]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["event"]["attributes"]["title"] == "\ud800"
