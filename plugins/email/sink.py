"""The ``email`` sink: alert mails over SMTP (aiosmtplib), threaded per alert.

One SMTP session per attempt: connect (implicit TLS or STARTTLS, never a silent fall-back to
clear text), AUTH if configured, MAIL/RCPT/DATA, QUIT. The server's reply decides the outcome:
4xx replies and connection failures are retried, 5xx replies are permanent. A server that does
not offer STARTTLS or AUTH, or refuses the credentials, is a configuration error: the result
says what to set, and the core pauses the sink with one clear log line (every mail would fail
the same way, and retrying them quietly for a day helps nobody). When the server
refuses some recipients and takes the rest, the mail counts as delivered to those it took;
recipients refused with a 4xx are retried alone (the sink remembers, per mail, who already
has it), recipients refused with a 5xx are reported in the detail and the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Self

import aiosmtplib
from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    FilePath,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from notirouter import Message, SendResult, Sink, SinkContext, SinkOptions, TemplateText, hookimpl

from .message import DEFAULT_SUBJECT, Mail, MailComposer, parse_mailbox

log = logging.getLogger(__name__)

IMPLICIT_TLS_PORT = 465
SUBMISSION_PORT = 587
SMTP_PORT = 25
QUIT_TIMEOUT_SECONDS = 5.0
REMEMBERED_MAILS = 1024
MAX_REPLY_CHARS = 300


def _check_mailbox(value: str) -> str:
    parse_mailbox(value)
    return value.strip()


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


Mailbox = Annotated[str, AfterValidator(_check_mailbox)]
Mailboxes = Annotated[list[Mailbox], BeforeValidator(_one_or_many)]


class EmailOptions(SinkOptions):
    """Options of the ``email`` sink."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    host: str = Field(min_length=1, pattern=r"^[^\s/]+$")
    port: int | None = Field(default=None, ge=1, le=65535)
    """Default: 465 with ``tls``, 587 with ``starttls``, 25 in clear."""
    tls: bool | None = None
    """Implicit TLS from the first byte (port 465)."""
    starttls: bool | None = None
    """Upgrade with STARTTLS (port 587); required, never skipped. Set false to send in clear."""
    verify_certificate: bool = True
    ca_file: FilePath | None = None
    """Trust only the CAs in this PEM file (a private CA), instead of the system's."""
    username: str | None = Field(default=None, min_length=1)
    password: SecretStr | None = None
    from_: Mailbox = Field(alias="from")
    to: Mailboxes = Field(min_length=1)
    cc: Mailboxes = Field(default_factory=list)
    bcc: Mailboxes = Field(default_factory=list)
    subject: TemplateText = DEFAULT_SUBJECT
    local_hostname: str | None = Field(default=None, pattern=r"^[A-Za-z0-9.-]+$")
    """Name given in EHLO; default: this machine's fully qualified name."""
    timeout: float = Field(default=30.0, gt=0, le=300)
    concurrency: int = Field(default=2, ge=1, le=64)

    @field_validator("starttls")
    @classmethod
    def _one_kind_of_tls(cls, starttls: bool | None, info: ValidationInfo) -> bool | None:
        # A field validator (not the model one) so the error points at the starttls line.
        if starttls and info.data.get("tls"):
            raise ValueError(
                "tls (implicit TLS, port 465) and starttls (port 587) exclude each other"
            )
        if starttls and info.data.get("port") == IMPLICIT_TLS_PORT:
            raise ValueError("port 465 expects implicit TLS: use tls: true, not starttls")
        return starttls

    @model_validator(mode="after")
    def _transport_is_consistent(self) -> Self:
        # Secure unless told otherwise: 465 speaks TLS at once, anything else STARTTLS.
        if self.tls is None:
            self.tls = self.port == IMPLICIT_TLS_PORT and not self.starttls
        if self.starttls is None:
            self.starttls = not self.tls
        if self.port is None:
            self.port = (
                IMPLICIT_TLS_PORT if self.tls else SUBMISSION_PORT if self.starttls else SMTP_PORT
            )
        encrypted = self.tls or self.starttls
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        if self.username is not None and not encrypted:
            raise ValueError("username/password need tls or starttls: they would cross in clear")
        if self.ca_file is not None and not (encrypted and self.verify_certificate):
            raise ValueError("ca_file needs tls or starttls, with verify_certificate: true")
        return self


class EmailSink(Sink[EmailOptions]):
    """Sends each message as a multipart/alternative mail, threaded per alert."""

    type_name = "email"
    Options = EmailOptions

    def conversation_support(self) -> str | None:
        """Mail cannot be edited: later messages are replies in the alert's thread."""
        return "conversation: thread (In-Reply-To/References); a sent mail cannot be edited"

    def actions_support(self) -> str | None:
        """Mail carries links only."""
        return "actions: none: email carries the alert link only"

    def __init__(self, name: str, options: EmailOptions, context: SinkContext) -> None:
        super().__init__(name, options, context)
        self.composer = MailComposer(
            sink_name=name,
            sender=parse_mailbox(options.from_),
            to=[parse_mailbox(a) for a in options.to],
            cc=[parse_mailbox(a) for a in options.cc],
            bcc=[parse_mailbox(a) for a in options.bcc],
            subject=options.subject,
        )
        self._tls_context: ssl.SSLContext | None = None
        # Keyed by (Message-ID, digest of the message): two routes' mails for the same alert
        # share the root Message-ID, and one's refused recipients must not skip the other's.
        self._progress: OrderedDict[tuple[str, str], _Progress] = OrderedDict()
        if (options.tls or options.starttls) and not options.verify_certificate:
            log.warning(
                "sink %s: TLS certificate verification is off; anyone on the path to %s "
                "can read the mail and the SMTP password",
                name,
                self.server,
            )

    @property
    def server(self) -> str:
        """``host:port``, for details and logs (no credentials)."""
        return f"{self.options.host}:{self.options.port}"

    def render(self, message: Message) -> Any:
        """The envelope, headers and both parts that :meth:`send` would submit."""
        mail = self.composer.compose(message)
        return {
            "envelope": {"from": mail.sender, "to": list(mail.recipients)},
            "headers": mail.headers(),
            "text": mail.text,
            "html": mail.html,
        }

    async def send(self, message: Message) -> SendResult:
        """Submit the mail in one SMTP session and classify the server's answer."""
        mail = self.composer.compose(message)
        progress = self._progress.get((mail.message_id, mail.digest)) or _Progress()
        pending = [r for r in mail.recipients if r not in progress.done]
        if not pending:
            return self._settle(mail, progress)
        smtp = aiosmtplib.SMTP(
            hostname=self.options.host,
            port=self.options.port,
            use_tls=bool(self.options.tls),
            start_tls=False,  # below, explicitly: a server without it is a configuration error
            tls_context=self._tls() if self.options.tls or self.options.starttls else None,
            timeout=self.options.timeout,
            local_hostname=self.options.local_hostname,
        )
        stage = "connect"
        try:
            async with asyncio.timeout(self.options.timeout):
                await smtp.connect()
                if self.options.starttls:
                    stage = "STARTTLS"
                    await smtp.ehlo()
                    if not smtp.supports_extension("starttls"):
                        return SendResult.misconfigured(self._no_starttls())
                    await smtp.starttls()
                if self.options.username is not None and self.options.password is not None:
                    stage = "AUTH"
                    await smtp.ehlo()
                    if not smtp.supports_extension("auth"):
                        return SendResult.misconfigured(self._no_auth())
                    await smtp.login(
                        self.options.username, self.options.password.get_secret_value()
                    )
                stage = "send"
                refused, _ = await smtp.sendmail(mail.sender, pending, mail.as_bytes())
            replies = {r: (reply.code, reply.message) for r, reply in refused.items()}
        except aiosmtplib.SMTPRecipientsRefused as exc:
            replies = {e.recipient: (e.code, e.message) for e in exc.recipients}
        except aiosmtplib.SMTPResponseException as exc:
            return self._refused(_stage_of(exc, stage), exc.code, exc.message)
        except TimeoutError:
            return SendResult.retry(f"{self.server}: no answer within {self.options.timeout:g}s")
        except (aiosmtplib.SMTPException, OSError) as exc:
            return SendResult.retry(f"{self.server}: {stage} failed: {_describe(exc)}")
        finally:
            await _close(smtp)
        progress.record(pending, replies)
        self._remember((mail.message_id, mail.digest), progress)
        return self._settle(mail, progress)

    def _settle(self, mail: Mail, progress: _Progress) -> SendResult:
        waiting = [r for r in mail.recipients if r not in progress.done]
        refused = "; ".join(
            f"{r}: {_reply(code, text)}" for r, (code, text) in progress.refused.items()
        )
        if waiting:
            return SendResult.retry(
                f"{self.server}: {len(progress.accepted)} recipient(s) accepted; "
                f"retrying the ones refused for now: {refused}"
            )
        self._progress.pop((mail.message_id, mail.digest), None)
        if not progress.accepted:
            return SendResult.permanent(f"{self.server}: every recipient refused: {refused}")
        if progress.refused:
            log.warning(
                "sink %s: mail %s delivered to %d of %d recipient(s); refused for good: %s",
                self.name,
                mail.message_id,
                len(progress.accepted),
                len(mail.recipients),
                refused,
            )
            return SendResult.delivered(
                f"accepted for {len(progress.accepted)} of {len(mail.recipients)} "
                f"recipient(s); refused: {refused}"
            )
        return SendResult.delivered(f"accepted by {self.server}")

    def _no_starttls(self) -> str:
        return (
            f"{self.server} does not offer STARTTLS; if it speaks TLS from the first byte "
            f"(usually port 465), set port: 465 and tls: true; to send in clear on a trusted "
            f"network, set starttls: false (then without username/password)"
        )

    def _no_auth(self) -> str:
        return (
            f"{self.server} does not offer AUTH on this connection; remove username and "
            f"password if it takes mail without them, or use its submission port "
            f"(587 with STARTTLS, or port: 465 with tls: true)"
        )

    def _refused(self, stage: str, code: int, text: str) -> SendResult:
        detail = f"{self.server}: {stage} refused: {_reply(code, text)}"
        if stage == "AUTH" and 500 <= code < 600:
            # Wrong credentials, or a mechanism or encryption the server insists on: every
            # mail would be refused the same way, and dead-lettering them all helps nobody.
            return SendResult.misconfigured(
                f"{detail}; check username and password, or whether the server wants "
                f"port: 465 with tls: true"
            )
        if code == 530 and stage == "MAIL FROM":
            return SendResult.misconfigured(
                f"{detail}; the server requires AUTH: set username and password"
            )
        if 500 <= code < 600:
            return SendResult.permanent(detail)
        return SendResult.retry(detail)

    def _remember(self, key: tuple[str, str], progress: _Progress) -> None:
        # Bounded: the memory only spares recipients a second copy while retries run in this
        # process; after a restart the retry goes to everyone again (at-least-once).
        self._progress[key] = progress
        self._progress.move_to_end(key)
        while len(self._progress) > REMEMBERED_MAILS:
            self._progress.popitem(last=False)

    def _tls(self) -> ssl.SSLContext:
        if self._tls_context is None:
            if not self.options.verify_certificate:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            elif self.options.ca_file is not None:
                context = ssl.create_default_context(cafile=str(self.options.ca_file))
            else:
                context = ssl.create_default_context()
            self._tls_context = context
        return self._tls_context


class _Progress:
    """Who already has a mail (accepted) or never will (refused with a 5xx)."""

    def __init__(self) -> None:
        self.accepted: set[str] = set()
        self.refused: dict[str, tuple[int, str]] = {}

    @property
    def done(self) -> set[str]:
        return self.accepted | {r for r, (code, _) in self.refused.items() if code >= 500}

    def record(self, attempted: Iterable[str], replies: dict[str, tuple[int, str]]) -> None:
        """One transaction's outcome: refused recipients with their reply, the rest accepted."""
        for recipient in attempted:
            reply = replies.get(recipient)
            if reply is None:
                self.accepted.add(recipient)
                self.refused.pop(recipient, None)
            else:
                self.refused[recipient] = reply


def _stage_of(exc: aiosmtplib.SMTPResponseException, stage: str) -> str:
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        return "MAIL FROM"
    if isinstance(exc, aiosmtplib.SMTPDataError):
        return "message (DATA)"
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return "AUTH"
    if isinstance(exc, aiosmtplib.SMTPHeloError):
        return "EHLO"
    return stage


def _reply(code: int, text: str) -> str:
    line = " ".join(str(text).split())
    if len(line) > MAX_REPLY_CHARS:
        line = line[:MAX_REPLY_CHARS] + "…"
    return f"{code} {line}".strip()


def _describe(exc: BaseException) -> str:
    """A short reason for a transport failure, naming TLS certificate problems plainly."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return f"TLS certificate not trusted ({seen.verify_message})"
        seen = seen.__cause__ or seen.__context__
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())[:MAX_REPLY_CHARS]


async def _close(smtp: aiosmtplib.SMTP) -> None:
    # The outcome is already known; a failing QUIT changes nothing about it.
    if smtp.is_connected:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(QUIT_TIMEOUT_SECONDS):
                await smtp.quit()
    smtp.close()


@hookimpl
def register_sinks(register: Callable[[type[Sink[Any]]], None]) -> None:
    """Provide the ``email`` sink."""
    register(EmailSink)
