"""A real SMTP server (aiosmtpd) on loopback that plays a mail server in tests.

It runs in the test's own event loop, records every accepted mail with its envelope, and
answers from scripts: a reply per recipient address, and a sequence of replies to DATA (the
last one repeating), so a test can say "451 once, then 250". It can offer STARTTLS, speak
implicit TLS, and require AUTH.
"""

from __future__ import annotations

import asyncio
import email
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass
class Received:
    """One mail the server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls: bool
    authenticated: bool

    def message(self) -> EmailMessage:
        """The mail parsed as a client would."""
        parsed = email.message_from_bytes(self.content, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class SmtpServer:
    """aiosmtpd on 127.0.0.1 with scripted replies; start with :meth:`start`."""

    starttls: ssl.SSLContext | None = None
    implicit_tls: ssl.SSLContext | None = None
    credentials: dict[str, str] | None = None
    data_replies: list[str] = field(default_factory=lambda: ["250 2.0.0 OK queued"])
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    data_attempts: int = 0
    logins: list[str] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen on a free port."""
        loop = asyncio.get_running_loop()

        def protocol() -> SMTP:
            return SMTP(
                self,
                hostname="mx.test",
                tls_context=self.starttls,
                require_starttls=self.starttls is not None,
                authenticator=self._authenticate if self.credentials is not None else None,
                auth_required=self.credentials is not None,
                loop=loop,
            )

        self._server = await loop.create_server(protocol, "127.0.0.1", 0, ssl=self.implicit_tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # -- aiosmtpd handler hooks ----------------------------------------------------------------

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        """Refuse the addresses the script names; accept the rest."""
        reply = self.rcpt_replies.get(address, "250 2.1.5 OK")
        if reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Answer from the script; record the mail when the answer is 250."""
        reply = self.data_replies[min(self.data_attempts, len(self.data_replies) - 1)]
        self.data_attempts += 1
        if reply.startswith("250"):
            content = envelope.original_content or b""
            self.received.append(
                Received(
                    mail_from=envelope.mail_from or "",
                    rcpt_tos=list(envelope.rcpt_tos),
                    content=content,
                    # session.ssl is only set by STARTTLS; implicit TLS shows on the transport.
                    tls=server.transport is not None
                    and server.transport.get_extra_info("sslcontext") is not None,
                    authenticated=bool(session.authenticated),
                )
            )
        return reply

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert self.credentials is not None
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = data.login.decode(), data.password.decode()
        self.logins.append(user)
        # handled=False: aiosmtpd then answers 535 itself.
        return AuthResult(success=self.credentials.get(user) == password, handled=False)


def server_context(cert: Any) -> ssl.SSLContext:
    """A server-side TLS context holding a ``trustme`` leaf certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return context
