"""The email sink against a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator, Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trustme
from notirouter.plugins.email.message import root_message_id

from notirouter.api.message import Fact, Message, Severity
from notirouter.api.sink import Outcome, Sink
from tests.smtp_server import SmtpServer, server_context

ALERT_UUID = "5696845f-9ecf-4431-9f0f-48ee0ee2eff1"
COMMENT_UUID = "0c1f6b1e-0000-4000-8000-000000000001"
RECIPIENTS = {"from": "SOC Alerts <notirouter@alerts.example.com>", "to": ["oncall@example.com"]}


def alert_message(action: str = "created", **update: Any) -> Message:
    message = Message(
        title="Suspicious login",
        text="Many failed logins for admin.",
        severity=Severity.HIGH,
        link=f"https://app.sekoia.io/operations/alerts/{ALERT_UUID}",
        link_label="Open in Sekoia.io",
        facts=(Fact(name="Host", value="srv-01"), Fact(name="Rule", value="Brute force")),
        thread_key=ALERT_UUID,
        route="urgent-alerts",
        event={
            "type": "alert",
            "action": action,
            "attributes": {"uuid": ALERT_UUID, "short_id": "ALEY4fqz8moo"},
        },
    )
    return message.model_copy(update=update)


def comment_message() -> Message:
    return alert_message(
        title="New comment on Suspicious login",
        text="looking into it",
        event={
            "type": "alert-comment",
            "action": "created",
            "attributes": {
                "uuid": COMMENT_UUID,
                "alert_uuid": ALERT_UUID,
                "alert_short_id": "ALEY4fqz8moo",
            },
        },
    )


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    """A plain SMTP server on loopback that accepts everything."""
    server = SmtpServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def ca() -> trustme.CA:
    """A throw-away certificate authority for the test's TLS servers."""
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    """The test CA's certificate as a PEM file, the way an operator would configure it."""
    path = tmp_path / "test-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def plain_sink(make_sink: Callable[..., Sink[Any]], smtp: SmtpServer) -> Sink[Any]:
    """An email sink speaking clear SMTP to the plain server."""
    return make_sink(
        "email",
        name="oncall-mail",
        host="127.0.0.1",
        port=smtp.port,
        starttls=False,
        cc=["soc-lead@example.com"],
        bcc=["archive@example.com"],
        **RECIPIENTS,
    )


def only_mail(server: SmtpServer) -> EmailMessage:
    assert len(server.received) == 1
    return server.received[0].message()


def parts(mail: EmailMessage) -> tuple[str, str]:
    plain, html = list(mail.iter_parts())
    assert (plain.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    return plain.get_content(), html.get_content()  # type: ignore[attr-defined]


async def test_plain_smtp_delivers_multipart_with_headers(
    plain_sink: Sink[Any], smtp: SmtpServer
) -> None:
    result = await plain_sink.send(alert_message())
    assert result.outcome is Outcome.DELIVERED, result.detail
    received = smtp.received[0]
    assert received.mail_from == "notirouter@alerts.example.com"
    assert received.rcpt_tos == [
        "oncall@example.com",
        "soc-lead@example.com",
        "archive@example.com",
    ]
    mail = only_mail(smtp)
    assert mail.get_content_type() == "multipart/alternative"
    assert mail["Subject"] == "[HIGH] Suspicious login (ALEY4fqz8moo)"
    assert mail["From"] == "SOC Alerts <notirouter@alerts.example.com>"
    assert mail["To"] == "oncall@example.com"
    assert mail["Cc"] == "soc-lead@example.com"
    assert mail["Bcc"] is None
    assert b"archive@example.com" not in received.content
    assert mail["Date"].datetime is not None
    assert mail["Message-ID"] == root_message_id(ALERT_UUID, "alerts.example.com", "oncall-mail")
    assert mail["In-Reply-To"] is None
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["X-Auto-Response-Suppress"] == "All"
    plain, html = parts(mail)
    assert "Suspicious login" in plain
    assert "Host: srv-01" in plain
    assert f"Open in Sekoia.io: https://app.sekoia.io/operations/alerts/{ALERT_UUID}" in plain
    assert f'<a href="https://app.sekoia.io/operations/alerts/{ALERT_UUID}"' in html
    assert "<th" in html
    assert "srv-01" in html


async def test_hostile_title_creates_no_header_and_is_escaped_in_html(
    plain_sink: Sink[Any], smtp: SmtpServer
) -> None:
    hostile = alert_message(
        title='Login <script>alert(1)</script>\r\nBcc: victim@evil.test\r\n\r\n<a href="x">',
        text="see https://evil.test/login & <b>bold</b>",
        facts=(Fact(name="Host<img>", value="srv\r\nX-Injected: 1"),),
    )
    assert (await plain_sink.send(hostile)).outcome is Outcome.DELIVERED
    received = smtp.received[0]
    assert "victim@evil.test" not in received.rcpt_tos
    headers = received.content.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nBcc:" not in headers
    assert b"\r\nX-Injected:" not in received.content  # facts stay on one line, too
    mail = only_mail(smtp)
    assert mail["Bcc"] is None
    assert len(mail.get_all("Subject") or []) == 1
    assert mail["Subject"].startswith(
        "[HIGH] Login <script>alert(1)</script> Bcc: victim@evil.test"
    )
    plain, html = parts(mail)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert '<a href="x">' not in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html
    assert "Host&lt;img&gt;" in html
    # The attacker's URL keeps its look but not its scheme, in both parts.
    assert "https://evil.test" not in html
    assert "https://evil.test" not in plain
    assert "https\u200b://evil.test/login" in plain


# What mail clients autolink in text, whatever precedes it ("_" is a word character, but the
# URL after it still links).
AUTOLINK_BAITS = (
    "_https://evil.example/sso",
    "_www.evil.example",
    "*www.evil.example*",
    "(https://evil.example/a)",
    "see www.evil.example/reset",
    "//evil.example/x",
)


async def test_urls_in_untrusted_text_never_link_in_either_part(
    plain_sink: Sink[Any], smtp: SmtpServer
) -> None:
    message = alert_message(
        title=" ".join(AUTOLINK_BAITS),
        text="\n".join(AUTOLINK_BAITS),
        facts=tuple(Fact(name=bait, value=bait) for bait in AUTOLINK_BAITS),
    )
    assert message.link is not None
    assert (await plain_sink.send(message)).outcome is Outcome.DELIVERED
    plain, html = parts(only_mail(smtp))
    # The message's own link is the one button; every attacker URL is broken in both parts.
    assert html.count("<a ") == 1
    assert f'<a href="{message.link}"' in html
    for part in (plain, html):
        untrusted = part.replace(message.link, "")
        assert not re.search(r"(?i)(https?|ftp):|www\.|(?<!:)//[^\s/]", untrusted), untrusted
    assert "_https\u200b://evil.example/sso" in plain
    assert "_www\u200b.evil.example" in plain
    assert "see www\u200b.evil.example/reset" in html


async def test_threading_across_created_updated_and_comment(
    plain_sink: Sink[Any], smtp: SmtpServer
) -> None:
    for message in (alert_message("created"), alert_message("updated"), comment_message()):
        assert (await plain_sink.send(message)).outcome is Outcome.DELIVERED
    created, updated, commented = (r.message() for r in smtp.received)
    root = root_message_id(ALERT_UUID, "alerts.example.com", "oncall-mail")
    assert created["Message-ID"] == root
    assert created["In-Reply-To"] is None
    assert created["References"] is None
    for reply in (updated, commented):
        assert reply["Message-ID"] != root
        assert reply["In-Reply-To"] == root
        assert reply["References"] == root
    assert len({m["Message-ID"] for m in (created, updated, commented)}) == 3
    assert commented["Subject"] == "[HIGH] New comment on Suspicious login (ALEY4fqz8moo)"


async def test_sinks_sharing_a_domain_start_their_own_threads(
    make_sink: Callable[..., Sink[Any]], smtp: SmtpServer
) -> None:
    # Same from-domain, different mails (other subject): one Message-ID for both would let a
    # client that drops repeated ids hide the second from whoever is on both lists.
    common = {"host": "127.0.0.1", "port": smtp.port, "starttls": False, **RECIPIENTS}
    oncall = make_sink("email", name="oncall-mail", **common)
    managers = make_sink("email", name="managers-mail", subject="[{{ severity }}] x", **common)
    for sink in (oncall, managers, oncall):
        message = alert_message("created" if len(smtp.received) < 2 else "updated")
        assert (await sink.send(message)).outcome is Outcome.DELIVERED
    first, second, update = (r.message() for r in smtp.received)
    assert first["Message-ID"] != second["Message-ID"]
    assert update["In-Reply-To"] == first["Message-ID"]  # the sink's own thread


async def test_long_domain_keeps_references_readable(
    make_sink: Callable[..., Sink[Any]], smtp: SmtpServer
) -> None:
    # Python folds long unstructured headers into encoded words, which breaks threading.
    sink = make_sink(
        "email",
        host="127.0.0.1",
        port=smtp.port,
        starttls=False,
        to=["oncall@example.com"],
        **{"from": "notirouter@alerts.a-rather-long-subdomain.security.example.com"},
    )
    assert (await sink.send(alert_message("updated"))).outcome is Outcome.DELIVERED
    root = root_message_id(
        ALERT_UUID, "alerts.a-rather-long-subdomain.security.example.com", sink.name
    )
    assert f"\r\nIn-Reply-To: {root}\r\n".encode() in smtp.received[0].content
    # The mail's own id, as long, is not folded either: its value has no leading space.
    assert re.search(rb"\r\nMessage-ID: <alert\.[^\r\n]+>\r\n", smtp.received[0].content)
    assert only_mail(smtp)["Message-ID"].startswith("<alert.")
    assert only_mail(smtp)["References"] == root


async def test_subject_template_sees_message_event_and_enrichment(
    make_sink: Callable[..., Sink[Any]], smtp: SmtpServer
) -> None:
    sink = make_sink(
        "email",
        host="127.0.0.1",
        port=smtp.port,
        starttls=False,
        subject="{{ severity | upper }} {{ short_id }}: {{ alert.rule.name }} ({{ event.action }})",
        **RECIPIENTS,
    )
    message = alert_message(enrichment={"alert": {"rule": {"name": "Brute force\nrule"}}})
    assert (await sink.send(message)).outcome is Outcome.DELIVERED
    assert only_mail(smtp)["Subject"] == "HIGH ALEY4fqz8moo: Brute force rule (created)"


async def test_starttls_with_a_certificate_from_the_configured_ca(
    make_sink: Callable[..., Sink[Any]], ca: trustme.CA, ca_file: str
) -> None:
    server = SmtpServer(starttls=server_context(ca.issue_cert("127.0.0.1")))
    await server.start()
    try:
        sink = make_sink("email", host="127.0.0.1", port=server.port, ca_file=ca_file, **RECIPIENTS)
        assert sink.options.starttls
        result = await sink.send(alert_message())
        assert result.outcome is Outcome.DELIVERED, result.detail
        assert server.received[0].tls
    finally:
        await server.stop()


async def test_starttls_with_an_untrusted_certificate_is_retried_and_sends_nothing(
    make_sink: Callable[..., Sink[Any]], ca: trustme.CA
) -> None:
    server = SmtpServer(starttls=server_context(ca.issue_cert("127.0.0.1")))
    await server.start()
    try:
        sink = make_sink("email", host="127.0.0.1", port=server.port, **RECIPIENTS)
        result = await sink.send(alert_message())
        assert result.outcome is Outcome.RETRY
        assert "certificate" in result.detail
        assert server.received == []
    finally:
        await server.stop()


async def test_missing_starttls_never_falls_back_to_clear_text(
    make_sink: Callable[..., Sink[Any]], smtp: SmtpServer
) -> None:
    sink = make_sink("email", host="127.0.0.1", port=smtp.port, starttls=True, **RECIPIENTS)
    result = await sink.send(alert_message())
    assert result.outcome is Outcome.RETRY
    assert "STARTTLS" in result.detail
    assert smtp.received == []


async def test_implicit_tls(
    make_sink: Callable[..., Sink[Any]], ca: trustme.CA, ca_file: str
) -> None:
    server = SmtpServer(implicit_tls=server_context(ca.issue_cert("127.0.0.1")))
    await server.start()
    try:
        sink = make_sink(
            "email", host="127.0.0.1", port=server.port, tls=True, ca_file=ca_file, **RECIPIENTS
        )
        result = await sink.send(alert_message())
        assert result.outcome is Outcome.DELIVERED, result.detail
        assert server.received[0].tls
    finally:
        await server.stop()


async def test_auth_over_starttls(
    make_sink: Callable[..., Sink[Any]], ca: trustme.CA, ca_file: str
) -> None:
    server = SmtpServer(
        starttls=server_context(ca.issue_cert("127.0.0.1")),
        credentials={"notirouter": "correct-horse-battery"},
    )
    await server.start()
    try:
        options = {"host": "127.0.0.1", "port": server.port, "ca_file": ca_file, **RECIPIENTS}
        good = make_sink(
            "email", username="notirouter", password="correct-horse-battery", **options
        )
        result = await good.send(alert_message())
        assert result.outcome is Outcome.DELIVERED, result.detail
        assert server.received[0].authenticated
        assert server.logins == ["notirouter"]

        bad = make_sink("email", username="notirouter", password="wrong-secret-123", **options)
        result = await bad.send(alert_message("updated"))
        assert result.config_error  # wrong credentials: the sink pauses, the mail is kept
        assert "AUTH refused: 535" in result.detail
        assert "check username and password" in result.detail
        assert "wrong-secret-123" not in result.detail
        assert len(server.received) == 1
    finally:
        await server.stop()


async def test_temporary_refusal_is_retried_permanent_refusal_is_not(
    plain_sink: Sink[Any], smtp: SmtpServer
) -> None:
    smtp.data_replies = ["451 4.3.0 Try again later"]
    result = await plain_sink.send(alert_message())
    assert result.outcome is Outcome.RETRY
    assert "451 4.3.0 Try again later" in result.detail

    smtp.data_replies = ["550 5.7.1 Message rejected as spam"]
    result = await plain_sink.send(alert_message())
    assert result.outcome is Outcome.PERMANENT
    assert "550 5.7.1 Message rejected as spam" in result.detail
    assert smtp.received == []


async def test_some_recipients_refused_for_good(plain_sink: Sink[Any], smtp: SmtpServer) -> None:
    smtp.rcpt_replies = {"soc-lead@example.com": "550 5.1.1 No such user"}
    result = await plain_sink.send(alert_message())
    assert result.outcome is Outcome.DELIVERED
    assert "soc-lead@example.com: 550 5.1.1 No such user" in result.detail
    assert smtp.received[0].rcpt_tos == ["oncall@example.com", "archive@example.com"]


async def test_recipients_refused_for_now_are_retried_alone(
    plain_sink: Sink[Any], smtp: SmtpServer
) -> None:
    smtp.rcpt_replies = {"soc-lead@example.com": "450 4.2.1 Mailbox busy"}
    first = await plain_sink.send(alert_message())
    assert first.outcome is Outcome.RETRY
    assert "450 4.2.1 Mailbox busy" in first.detail
    smtp.rcpt_replies = {}
    second = await plain_sink.send(alert_message())
    assert second.outcome is Outcome.DELIVERED
    assert [r.rcpt_tos for r in smtp.received] == [
        ["oncall@example.com", "archive@example.com"],
        ["soc-lead@example.com"],
    ]
    # Both copies are the same mail: one Message-ID.
    assert len({r.message()["Message-ID"] for r in smtp.received}) == 1


async def test_refused_recipients_of_one_route_are_not_skipped_for_another(
    plain_sink: Sink[Any], smtp: SmtpServer
) -> None:
    # Both routes' mails open the same thread (one root Message-ID), but they are different
    # mails: who already has route A's must not decide who gets route B's.
    smtp.rcpt_replies = {"soc-lead@example.com": "450 4.2.1 Mailbox busy"}
    route_a = alert_message()
    assert (await plain_sink.send(route_a)).outcome is Outcome.RETRY
    smtp.rcpt_replies = {}
    route_b = alert_message(route="audit", title="Suspicious login (audit copy)")
    assert (await plain_sink.send(route_b)).outcome is Outcome.DELIVERED
    assert (await plain_sink.send(route_a)).outcome is Outcome.DELIVERED  # A's retry
    assert [r.rcpt_tos for r in smtp.received] == [
        ["oncall@example.com", "archive@example.com"],
        ["oncall@example.com", "soc-lead@example.com", "archive@example.com"],
        ["soc-lead@example.com"],
    ]
    assert len({r.message()["Message-ID"] for r in smtp.received}) == 1


async def test_every_recipient_refused_is_permanent(
    plain_sink: Sink[Any], smtp: SmtpServer
) -> None:
    smtp.rcpt_replies = {
        address: "550 5.1.1 No such user"
        for address in ("oncall@example.com", "soc-lead@example.com", "archive@example.com")
    }
    result = await plain_sink.send(alert_message())
    assert result.outcome is Outcome.PERMANENT
    assert "every recipient refused" in result.detail
    assert smtp.data_attempts == 0


async def test_connection_refused_is_retried(make_sink: Callable[..., Sink[Any]]) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = make_sink("email", host="127.0.0.1", port=port, starttls=False, **RECIPIENTS)
    result = await sink.send(alert_message())
    assert result.outcome is Outcome.RETRY
    assert f"127.0.0.1:{port}" in result.detail


async def test_silent_server_is_a_timeout_retry(make_sink: Callable[..., Sink[Any]]) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never greets; waits until the client hangs up
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        sink = make_sink(
            "email", host="127.0.0.1", port=port, starttls=False, timeout=0.3, **RECIPIENTS
        )
        result = await sink.send(alert_message())
        assert result.outcome is Outcome.RETRY
        assert "no answer within 0.3s" in result.detail
    finally:
        server.close()
        await server.wait_closed()


async def test_render_shows_envelope_headers_and_both_parts(plain_sink: Sink[Any]) -> None:
    rendered = plain_sink.render(alert_message("updated"))
    assert rendered["envelope"] == {
        "from": "notirouter@alerts.example.com",
        "to": ["oncall@example.com", "soc-lead@example.com", "archive@example.com"],
    }
    assert rendered["headers"]["In-Reply-To"] == root_message_id(
        ALERT_UUID, "alerts.example.com", "oncall-mail"
    )
    assert "Bcc" not in rendered["headers"]
    assert rendered["text"].startswith("Suspicious login\n")
    assert rendered["html"].startswith("<!DOCTYPE html>")
