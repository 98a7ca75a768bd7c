"""The receiver's HTTP/1.1 connection: uvicorn's httptools protocol, with limits and deadlines.

uvicorn on httptools keeps every byte of an unfinished header in memory (an endless header
grows the process without bound and stalls the event loop), never closes a connection that
stays silent before its first request or trickles its headers, and waits for a request body
for as long as the client cares to send it. This protocol bounds all of it, per connection:

- the request line and headers together (``max_headers_bytes``) and any one header
  (``max_header_bytes``): ``431``, then the connection is closed;
- a silent connection, before its first request or between requests (``idle_timeout``):
  closed;
- from a request's first byte to the end of its headers (``header_timeout``): ``408``, closed;
- from the end of the headers to the end of the body (``body_timeout``): ``408``, closed;
- connections beyond ``max_connections``: answered ``503`` with ``Retry-After`` as soon as
  they are accepted, then closed.

httptools stays the parser (it is several times faster than h11, see the README's benchmark):
the limit is enforced in front of it, on the bytes fed to it, so it never buffers more than
``max_headers_bytes`` of a request head (plus, for a request pipelined behind another in the
same read, the rest of that one read, which the event loop bounds at about 256 KB).
"""

from __future__ import annotations

import asyncio
import json
from asyncio import TimerHandle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

OVER_CAPACITY_RETRY_AFTER = "1"
# After a refusal the answer is sent and our side shut down, but the connection is read (and
# the bytes dropped) a little longer before closing: closing with unread bytes would reset it
# and could destroy the answer before the client reads it. A client that keeps sending is cut.
LINGER_SECONDS = 2.0
LINGER_BYTES = 1_048_576


@dataclass(frozen=True)
class ConnectionLimits:
    """What one connection may cost (``server:`` in the config; seconds and bytes)."""

    max_header_bytes: int
    max_headers_bytes: int
    header_timeout: float
    idle_timeout: float
    body_timeout: float
    max_connections: int


def error_response(status: int, reason: str, headers: dict[str, str] | None = None) -> bytes:
    """A complete ``Connection: close`` answer with the receiver's JSON error body."""
    body = json.dumps({"error": reason}).encode()
    lines = [
        STATUS_LINE[status],
        b"content-type: application/json\r\n",
        b"content-length: %d\r\n" % len(body),
        b"connection: close\r\n",
    ]
    lines += [f"{name}: {value}\r\n".encode("latin-1") for name, value in (headers or {}).items()]
    return b"".join([*lines, b"\r\n", body])


class LimitedHttpProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` with :class:`ConnectionLimits` (bind them with
    :func:`limited_protocol`)."""

    limits: ClassVar[ConnectionLimits]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Bytes of the current request head fed to the parser; reset when the head is complete.
        self._head_bytes = 0
        self._reading_head = True
        self._head_started = False
        self._deadline: TimerHandle | None = None
        self._refused = False
        self._discarded = 0

    # Connection life

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Count the connection; arm the idle deadline until its first byte."""
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            # Answered at once, not after its request: a connection beyond the cap must not
            # cost a descriptor for longer than the linger, whatever the client does.
            retry = {"retry-after": OVER_CAPACITY_RETRY_AFTER}
            self._refuse(503, "too many connections, retry later", retry)
            return
        # uvicorn's keep-alive timer closes silent connections between requests; arm it
        # before the first one too (uvicorn does not), and the first byte cancels it.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.limits.idle_timeout, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        """Cancel our deadline with uvicorn's own timers."""
        self._cancel_deadline()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        """On server shutdown, a request whose body is still arriving is refused at once."""
        cycle = self.cycle
        if cycle is not None and not self._reading_head and not cycle.response_started:
            self._refuse(503, "shutting down, retry later", {"retry-after": "5"})
            return
        super().shutdown()

    # Bytes in

    def data_received(self, data: bytes) -> None:
        """Feed the parser, never more than ``max_headers_bytes`` of one request head."""
        if self._refused:
            self._discarded += len(data)
            if self._discarded > LINGER_BYTES:
                self.transport.close()
            return
        if not self._reading_head:
            super().data_received(data)
            return
        if not self._head_started:
            self._head_started = True
            self._arm(self.limits.header_timeout, self._header_deadline)
        room = self.limits.max_headers_bytes - self._head_bytes
        if len(data) <= room:
            self._head_bytes += len(data)
            super().data_received(data)
            return
        # Counted before feeding: the parser's callbacks reset the count once the head ends.
        self._head_bytes += room
        if room:
            super().data_received(data[:room])
        if self._finished():
            return
        if self._reading_head:
            limit = self.limits.max_headers_bytes
            self._refuse(431, f"request line and headers larger than {limit} bytes")
            return
        super().data_received(data[room:])

    # Parser callbacks

    # Once refused, the rest of the bytes already fed are parsed but go nowhere: no request
    # reaches the application (``data_received`` feeds nothing more after a refusal).

    def on_url(self, url: bytes) -> None:
        """Collect the target, unless refused."""
        if not self._refused:
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        """Refuse a single header over ``max_header_bytes``."""
        if self._refused:
            return
        if len(name) + len(value) > self.limits.max_header_bytes:
            self._refuse(431, f"a header is larger than {self.limits.max_header_bytes} bytes")
            return
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        """The head is in: from now on the body deadline runs."""
        if self._refused:
            return
        self._reading_head = False
        self._head_bytes = 0
        self._arm(self.limits.body_timeout, self._body_deadline)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        """Hand the body on, unless refused."""
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        """The body is in: the next bytes start a new request head."""
        if self._refused:
            return
        self._reading_head = True
        self._head_started = False
        self._cancel_deadline()
        super().on_message_complete()

    # Deadlines

    def _header_deadline(self) -> None:
        self._deadline = None
        if self._reading_head and not self._finished():
            seconds = self.limits.header_timeout
            self._refuse(408, f"request headers not received within {seconds:g}s")

    def _body_deadline(self) -> None:
        self._deadline = None
        cycle = self.cycle
        if self._finished() or cycle is None:
            return
        if cycle.response_started:
            # Answered already (413, 404...) while the client keeps sending: stop listening.
            self.transport.close()
            return
        seconds = self.limits.body_timeout
        self._refuse(408, f"request body not received within {seconds:g}s")

    def _arm(self, seconds: float, handler: Callable[[], None]) -> None:
        self._cancel_deadline()
        self._deadline = self.loop.call_later(seconds, handler)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    # Refusals

    def _refuse(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        """Answer ``status`` and end the connection; a request the application is reading
        sees a disconnect, and its own answer goes nowhere."""
        self._cancel_deadline()
        cycle = self.cycle
        if cycle is not None and not self._reading_head:
            cycle.response_started = True
            cycle.disconnected = True
            cycle.message_event.set()
        if self._finished():
            return
        self._refused = True
        self.transport.write(error_response(status, reason, headers))
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        self.flow.resume_reading()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _finished(self) -> bool:
        return self._refused or self.transport.is_closing()


def limited_protocol(limits: ConnectionLimits) -> type[LimitedHttpProtocol]:
    """A :class:`LimitedHttpProtocol` bound to ``limits``, for ``uvicorn.Config(http=...)``."""
    return type("BoundLimitedHttpProtocol", (LimitedHttpProtocol,), {"limits": limits})
