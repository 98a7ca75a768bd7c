"""Building the alert mail: addresses, threading ids, subject, the two parts, the bytes.

Kept apart from the transport (``email.py``) so the dry run (``notirouter route``) shows
exactly the mail that :meth:`EmailSink.send` would submit.

Everything that comes from an event (title, text, facts, short id, thread key) is untrusted:
it never reaches a header unsanitised, it is autoescaped in the HTML part, and URL schemes and
``www.`` hosts in it are broken (``notirouter.defuse_urls``, as in every chat sink) so a mail
client does not turn an attacker's URL into a live link.
"""

from __future__ import annotations

import email.utils
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, EmailPolicy
from importlib import resources
from typing import Any

from jinja2 import Template, TemplateError

from notirouter import Message, make_environment

from .text import (
    HEADER_UNSAFE,
    MAX_SUBJECT_TITLE_CHARS,
    body_variables,
    clean_header_text,
    one_line,
    severity_label,
)

DEFAULT_SUBJECT = (
    "[{{ severity }}] {{ message.title }}{% if short_id %} ({{ short_id }}){% endif %}"
)
"""``[HIGH] Suspicious login (ALEY4fqz8moo)``; the short id is left out when the event has none."""

# An addr-spec we are sure every server and client reads the same way: dot-atom local part,
# ASCII host name. Quoted local parts, address literals and IDNs are refused at config time.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDR_SPEC = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*")
# A thread key used verbatim in a Message-ID must be a plain token; anything else is hashed.
_ID_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
_SHORT_ID = re.compile(r"[A-Za-z0-9]{1,64}")


def parse_mailbox(value: str) -> Address:
    """One mailbox (``alerts@example.com`` or ``Alerts <alerts@example.com>``) as an Address.

    Raises ``ValueError`` for anything else, including several addresses in one string.
    """
    if HEADER_UNSAFE.search(value):
        raise ValueError("an address must not contain line breaks or control characters")
    parsed = email.utils.getaddresses([value])
    if len(parsed) != 1 or not _ADDR_SPEC.fullmatch(parsed[0][1]):
        raise ValueError(f"not a single email address: {value!r}")
    name, addr_spec = parsed[0]
    local, _, domain = addr_spec.rpartition("@")
    return Address(display_name=name, username=local, domain=domain)


def short_id(message: Message) -> str:
    """The alert's short id (``ALEY4fqz8moo``) from the event, or ``""``.

    Alert events carry ``attributes.short_id``; comment events ``attributes.alert_short_id``.
    """
    attributes = message.event.get("attributes")
    if not isinstance(attributes, dict):
        return ""
    for key in ("short_id", "alert_short_id"):
        value = attributes.get(key)
        if isinstance(value, str) and _SHORT_ID.fullmatch(value):
            return value
    return ""


def _id_token(key: str) -> str:
    if _ID_TOKEN.fullmatch(key):
        return key
    return "h" + hashlib.sha256(key.encode()).hexdigest()[:32]


def sink_tag(sink_name: str) -> str:
    """A short, stable token for a sink in Message-IDs (its name is config, not for headers)."""
    return hashlib.sha256(sink_name.encode()).hexdigest()[:10]


def root_message_id(thread_key: str, domain: str, sink_name: str) -> str:
    """The Message-ID of the first mail of a thread, computable from the thread key and sink.

    The sink is part of it: two sinks sharing a from-domain send different mails for the same
    alert (other recipients, another subject), and a client that drops a second mail with a
    Message-ID it has seen (Gmail) would hide one of them from whoever is on both.
    """
    return f"<alert.{_id_token(thread_key)}.{sink_tag(sink_name)}@{domain}>"


def is_thread_root(message: Message) -> bool:
    """Whether ``message`` opens its thread: the ``created`` event of the thread's own object.

    An alert's creation has ``attributes.uuid`` (or ``short_id``) equal to the thread key; a
    comment created on that alert has its own uuid (the thread key is the alert's), so it
    answers the thread.
    """
    if not message.thread_key or message.event.get("action") != "created":
        return False
    attributes = message.event.get("attributes")
    if not isinstance(attributes, dict):
        return False
    own_ids = (attributes.get("uuid"), attributes.get("short_id"))
    key = message.thread_key.lower()
    return any(isinstance(own, str) and own.lower() == key for own in own_ids)


@dataclass(frozen=True, slots=True)
class ThreadIds:
    """The Message-ID of one mail and, for a reply, the root it answers."""

    message_id: str
    in_reply_to: str | None


def thread_ids(message: Message, domain: str, sink_name: str) -> ThreadIds:
    """Message-ID, In-Reply-To and References for ``message``, without any stored state.

    The root mail uses :func:`root_message_id`. Every other mail gets its own id, derived
    from a digest of the message and the sink: different events never share one, while a
    retry of the same message keeps it, so clients that drop duplicate Message-IDs hide an
    at-least-once duplicate.

    Threads are per sink, not per route: a sink's mails of one alert share the root even when
    routes split them (``created`` on one route, updates and comments on another), so its
    recipients see one thread. Two routes sending the *same* ``created`` event through one sink
    therefore give two mails one root id; the sink keeps their delivery state apart
    (:attr:`Mail.digest`), but a client that drops repeated Message-IDs shows only one.
    """
    digest = hashlib.sha256(f"{sink_name}\n{message.model_dump_json()}".encode()).hexdigest()[:20]
    if not message.thread_key:
        return ThreadIds(f"<notirouter.{digest}@{domain}>", None)
    root = root_message_id(message.thread_key, domain, sink_name)
    if is_thread_root(message):
        return ThreadIds(root, None)
    return ThreadIds(f"<alert.{_id_token(message.thread_key)}.{digest}@{domain}>", root)


class _MailPolicy(EmailPolicy):
    """SMTP policy that never folds Message-ID, In-Reply-To and References.

    Python folds In-Reply-To and References past 78 characters into RFC 2047 encoded words,
    which no client reads as message ids: threading would silently break with long domains.
    It folds a long Message-ID before the ``<``, which is valid but leaves a leading space in
    the value some parsers return (Python's own): written on one line, the root's Message-ID
    is byte for byte what its replies' In-Reply-To says. A message id has no whitespace to
    fold at anyway; 998 characters is the hard limit.
    """

    def fold_binary(self, name: str, value: str) -> bytes:
        """Write message ids verbatim; everything else as the SMTP policy does."""
        if name.lower() in ("message-id", "in-reply-to", "references"):
            return f"{name}: {value}".encode("ascii") + self.linesep.encode("ascii")
        return super().fold_binary(name, value)


MAIL_POLICY = _MailPolicy(linesep="\r\n", cte_type="7bit")
"""7-bit clean output (every part quoted-printable), so no server needs 8BITMIME."""


@dataclass(frozen=True, slots=True)
class Mail:
    """A composed mail: the message, its envelope, its Message-ID and a digest of its source."""

    message: EmailMessage
    sender: str
    recipients: tuple[str, ...]
    message_id: str
    text: str
    html: str
    digest: str
    """The notirouter message it was made from, hashed: the same for every retry of one
    delivery, different for another route's mail even when both carry the root Message-ID."""

    def as_bytes(self) -> bytes:
        """The exact bytes submitted with DATA (Bcc never appears in them)."""
        return self.message.as_bytes(policy=MAIL_POLICY)

    def headers(self) -> dict[str, str]:
        """The headers as a client shows them (for the dry run)."""
        return {name: str(value) for name, value in self.message.items()}


def _load_template(name: str, *, autoescape: bool) -> Template:
    source = resources.files(__package__ or "notirouter.plugins.email").joinpath("templates", name)
    environment = make_environment().overlay(autoescape=autoescape)
    return environment.from_string(source.read_text(encoding="utf-8"))


class MailComposer:
    """Composes the mail for a message: the same for ``send`` and for the dry run."""

    def __init__(
        self,
        *,
        sink_name: str,
        sender: Address,
        to: Sequence[Address],
        cc: Sequence[Address],
        bcc: Sequence[Address],
        subject: str,
    ) -> None:
        self.sink_name = sink_name
        self.sender = sender
        self.to = tuple(to)
        self.cc = tuple(cc)
        # Each mailbox once, even if listed in both to and bcc (domains are case-insensitive,
        # and no real server treats local parts differently by case either).
        envelope = {a.addr_spec.lower(): a.addr_spec for a in (*to, *cc, *bcc)}
        self.recipients = tuple(envelope.values())
        environment = make_environment()  # plain text: the subject is sanitised, not escaped
        self._subject = environment.from_string(subject)
        self._default_subject = environment.from_string(DEFAULT_SUBJECT)
        self._text = _load_template("email.txt", autoescape=False)
        self._html = _load_template("email.html", autoescape=True)

    def compose(self, message: Message, now: datetime | None = None) -> Mail:
        """The mail for ``message``, dated ``now`` (default: the current time)."""
        ids = thread_ids(message, self.sender.domain, self.sink_name)
        variables = body_variables(message, short_id(message))
        text = self._text.render(variables)
        html = self._html.render(variables)
        mail = EmailMessage(policy=SMTP)
        mail["From"] = self.sender
        mail["To"] = self.to
        if self.cc:
            mail["Cc"] = self.cc
        mail["Subject"] = self.subject(message)
        mail["Date"] = email.utils.format_datetime(now or datetime.now(UTC))
        mail["Message-ID"] = ids.message_id
        if ids.in_reply_to is not None:
            mail["In-Reply-To"] = ids.in_reply_to
            mail["References"] = ids.in_reply_to
        # RFC 3834: auto-responders must not answer; Exchange/Outlook need their own header.
        mail["Auto-Submitted"] = "auto-generated"
        mail["X-Auto-Response-Suppress"] = "All"
        mail.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
        mail.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
        digest = hashlib.sha256(message.model_dump_json().encode()).hexdigest()
        return Mail(
            mail, self.sender.addr_spec, self.recipients, ids.message_id, text, html, digest
        )

    def subject(self, message: Message) -> str:
        """The configured subject template, rendered and cleaned to one safe line."""
        summary = message.summary()
        summary["title"] = one_line(message.title, MAX_SUBJECT_TITLE_CHARS)
        variables: dict[str, Any] = {
            **message.enrichment,
            "message": summary,
            "event": message.event,
            "enrichment": message.enrichment,
            "severity": severity_label(message.severity),
            "short_id": short_id(message),
        }
        try:
            rendered = self._subject.render(variables)
        except (TemplateError, TypeError, ValueError, ArithmeticError, LookupError):
            # A template that fails on one event's data should not cost the alert its mail.
            rendered = self._default_subject.render(variables)
        return clean_header_text(rendered) or clean_header_text(message.title) or "notirouter"
