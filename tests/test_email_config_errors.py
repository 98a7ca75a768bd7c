"""An SMTP server that does not fit the sink's config pauses the sink, loudly, and keeps mail.

No STARTTLS offered, no AUTH offered, credentials refused, AUTH required but not configured:
every mail would fail the same way until the operator changes the config, so the result says
what to set, the dispatcher logs one error line per pause, and nothing becomes a dead letter.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trustme

from notirouter.api.message import Message, Severity
from notirouter.api.sink import CONFIG_ERROR_PAUSE_SECONDS, Outcome, Sink
from notirouter.cli import main
from notirouter.delivery.dispatcher import SinkDispatcher
from notirouter.delivery.retry import RetryPolicy
from notirouter.metrics import Metrics
from notirouter.queue.records import NewDelivery
from notirouter.queue.sqlite.queue import SqliteQueue
from tests.conftest import TOKEN
from tests.serving import event, post_events, serve
from tests.smtp_server import SmtpServer, server_context

RECIPIENTS = {"from": "notirouter@example.com", "to": ["oncall@example.com"]}
MESSAGE = Message(title="Suspicious login", severity=Severity.HIGH, route="r", event={})


@pytest.fixture
async def plain_server() -> AsyncIterator[SmtpServer]:
    """An SMTP server on loopback that offers neither STARTTLS nor AUTH."""
    server = SmtpServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


async def test_no_starttls_says_what_to_set(
    make_sink: Callable[..., Sink[Any]], plain_server: SmtpServer
) -> None:
    sink = make_sink("email", host="127.0.0.1", port=plain_server.port, **RECIPIENTS)
    result = await sink.send(MESSAGE)
    assert result.config_error
    assert result.outcome is Outcome.RETRY  # the mail is kept
    assert "does not offer STARTTLS" in result.detail
    assert "starttls: false" in result.detail
    assert "port: 465 and tls: true" in result.detail
    assert plain_server.received == []  # never a fall-back to clear text


async def test_no_auth_offered_says_what_to_set(
    make_sink: Callable[..., Sink[Any]], ca: trustme.CA, ca_file: str
) -> None:
    server = SmtpServer(implicit_tls=server_context(ca.issue_cert("127.0.0.1")))
    await server.start()
    try:
        sink = make_sink(
            "email",
            host="127.0.0.1",
            port=server.port,
            tls=True,
            ca_file=ca_file,
            username="notirouter",
            password="s3cret-password-1",
            **RECIPIENTS,
        )
        result = await sink.send(MESSAGE)
    finally:
        await server.stop()
    assert result.config_error
    assert "does not offer AUTH" in result.detail
    assert "s3cret-password-1" not in result.detail
    assert server.received == []


async def test_auth_required_but_not_configured_says_so(
    make_sink: Callable[..., Sink[Any]], ca: trustme.CA, ca_file: str
) -> None:
    server = SmtpServer(
        starttls=server_context(ca.issue_cert("127.0.0.1")), credentials={"u": "password-123"}
    )
    await server.start()
    try:
        sink = make_sink("email", host="127.0.0.1", port=server.port, ca_file=ca_file, **RECIPIENTS)
        result = await sink.send(MESSAGE)
    finally:
        await server.stop()
    assert result.config_error
    assert "530" in result.detail and "set username and password" in result.detail


async def test_dispatcher_pauses_the_sink_with_one_error_line_and_keeps_the_mail(
    make_sink: Callable[..., Sink[Any]],
    plain_server: SmtpServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = make_sink(
        "email", name="oncall-mail", host="127.0.0.1", port=plain_server.port, **RECIPIENTS
    )
    db = tmp_path / "queue.db"
    queue = SqliteQueue(db, synchronous="normal")
    await queue.open()
    await queue.enqueue(hook="sekoia", source="sekoia", dedupe_key="e1", body=b"{}")
    [event] = await queue.claim_events(1, 60.0)
    jobs = [
        NewDelivery(route=f"r{n}", sink="oncall-mail", message_json=MESSAGE.model_dump_json())
        for n in range(3)
    ]
    assert await queue.complete_event(event, jobs)
    # Without the pause, this backoff would retry every 50 ms.
    policy = RetryPolicy(initial=0.05, maximum=0.1)
    dispatcher = SinkDispatcher(sink, queue, policy, Metrics(), lease=30.0)
    caplog.set_level(logging.INFO, logger="notirouter.delivery")
    started = time.time()
    runner = asyncio.create_task(dispatcher.run())
    try:
        for _ in range(500):  # at most 10 s
            if any("configuration error" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(1.5)  # many backoffs: nothing more may happen
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await dispatcher.drain(1.0)
        await queue.close()

    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    line = errors[0].getMessage()
    assert "sink oncall-mail: configuration error" in line
    assert "starttls: false" in line and f"pauses {CONFIG_ERROR_PAUSE_SECONDS:.0f}s" in line
    assert errors[0].__dict__["outcome"] == "misconfigured"
    with sqlite3.connect(db) as connection:
        rows = connection.execute(
            "SELECT state, attempts, next_attempt_at FROM deliveries"
        ).fetchall()
    assert [state for state, _, _ in rows] == ["pending"] * 3  # kept, not dead letters
    assert sum(attempts for _, attempts, _ in rows) <= 2  # the attempts in flight at once
    assert all(due >= started + CONFIG_ERROR_PAUSE_SECONDS - 1 for _, a, due in rows if a)


async def test_serve_with_refused_credentials_pauses_keeps_the_mail_and_says_what_to_check(
    tmp_path: Path,
    write_config: Callable[..., Path],
    ca: trustme.CA,
    ca_file: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = SmtpServer(
        starttls=server_context(ca.issue_cert("127.0.0.1")),
        credentials={"notirouter": "correct-horse-battery"},
    )
    await server.start()
    db = tmp_path / "q.db"
    path = write_config(
        f"""
        hooks:
          - {{name: sekoia, token: {TOKEN}}}
        queue: {{path: "{db}"}}
        delivery: {{backoff_initial: 50ms, backoff_max: 100ms}}
        sinks:
          oncall-mail:
            type: email
            host: 127.0.0.1
            port: {server.port}
            ca_file: "{ca_file}"
            username: notirouter
            password: wrong-password-4711
            from: notirouter@example.com
            to: [oncall@example.com]
        routes:
          - {{name: everything, sinks: [oncall-mail]}}
        """
    )
    caplog.set_level(logging.INFO, logger="notirouter.delivery")
    try:
        async with serve(path) as served:
            await post_events(served, [event(1)])
            for _ in range(500):  # at most 10 s
                if any("configuration error" in r.getMessage() for r in caplog.records):
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.5)  # a retry at the 50 ms backoff would come now
    finally:
        await server.stop()
    [line] = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert "sink oncall-mail: configuration error" in line
    assert "AUTH refused: 535" in line and "check username and password" in line
    assert "wrong-password-4711" not in caplog.text
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT state, attempts FROM deliveries").fetchall()
    assert rows == [("pending", 1)]  # one attempt (each AUTH mechanism tried), then the pause
    assert server.received == []
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["dead", "list", "--json", "-c", str(path)]) == 0
    assert json.loads(capsys.readouterr().out) == []  # the mail waits; it is no dead letter
