"""Outbound HTTP: one shared aiohttp session per process, behind a small interface.

Plugins never open their own clients. Measured on this machine, a shared aiohttp session posts
about 11,500 requests/s to a loopback sink at 8 connections where httpx manages under 1,000,
and the gap widens under concurrency, exactly when an alert storm hits (DESIGN.md §4).
Error messages never include the URL: webhook URLs carry their secret in the path or query.

Each sink and enricher gets its own connection budget over that one session
(:meth:`HttpClient.with_budget`): a service that hangs holds at most its own budget of
connections, never the ones another service needs.
"""

from __future__ import annotations

import asyncio
import copy
import email.utils
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlsplit

import aiohttp
from pydantic import AfterValidator, SecretStr

# Enough for any API object notirouter reads (a Sekoia alert without its STIX bundle is tens of
# KiB); a bound all the same, so a hostile or broken server cannot exhaust memory.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024


class TransportError(Exception):
    """The request did not get an HTTP answer (connection failure, TLS error, timeout).

    The message is safe to log: it names the host and port at most, never the path or query.
    """


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """An outbound request as a sink describes it; the core sends it.

    Give ``json`` (serialised compactly as UTF-8) or raw ``data`` bytes, not both.
    """

    url: str
    method: str = "POST"
    json: Any = None
    data: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    max_response_bytes: int = MAX_RESPONSE_BYTES

    def body_bytes(self) -> bytes:
        """The exact bytes that go on the wire."""
        if self.data is not None:
            return self.data
        if self.json is None:
            return b""
        return json_bytes(self.json)


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """The answer to an :class:`HttpRequest`: status, lower-cased headers and the body.

    The body is read whole up to the request's ``max_response_bytes``; ``truncated`` says
    whether more was left unread.
    """

    status: int
    headers: Mapping[str, str]
    body: bytes
    truncated: bool = False

    def text(self) -> str:
        """The body decoded as UTF-8 (invalid bytes replaced)."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON, or ``None`` if it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def retry_after(self) -> float | None:
        """Seconds to wait from the ``Retry-After`` header (delta-seconds or HTTP date)."""
        return parse_retry_after(self.headers.get("retry-after"))


def json_bytes(payload: Any) -> bytes:
    """Serialise ``payload`` the way every JSON sink sends it: compact UTF-8."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def parse_retry_after(value: str | None) -> float | None:
    """Parse a ``Retry-After`` value; ``None`` when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        # "inf" and "nan" parse as floats; neither is a time to wait.
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


async def _read_body(response: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    """Read up to ``limit`` bytes. ``content.read(n)`` returns what is buffered, not n bytes:
    a body arriving in several packets (any TLS answer over one record) needs a loop."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await response.content.read(limit - size)
        if not chunk:
            return b"".join(chunks), False
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), not response.content.at_eof()


class _SharedSession:
    """The one aiohttp session every :class:`HttpClient` of a process sends through."""

    def __init__(self, user_agent: str) -> None:
        self.user_agent = user_agent
        self.session: aiohttp.ClientSession | None = None

    async def get(self) -> aiohttp.ClientSession:
        if self.session is None:
            # No pool-wide limit: every client has its own budget, so the pool never holds more
            # than their sum, and one owner can never use up connections another one needs.
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
            self.session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": self.user_agent},
                auto_decompress=True,
            )
        return self.session

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None


class HttpClient:
    """The process-wide outbound HTTP client handed to plugins.

    At most ``max_connections`` requests of this client are in flight at once (each holds one
    connection); :meth:`with_budget` gives a sink or an enricher a client of its own budget over
    the same session. A request waiting for a free place counts against its timeout.

    Redirects are not followed: a webhook endpoint that redirects is misconfigured, and
    following it could forward the payload somewhere unexpected.
    """

    def __init__(self, *, max_connections: int = 256, user_agent: str = "notirouter") -> None:
        self.max_connections = max_connections
        self._shared = _SharedSession(user_agent)
        self._budget = asyncio.Semaphore(max_connections)

    def with_budget(self, max_connections: int) -> HttpClient:
        """A client over the same session, with its own budget of ``max_connections``."""
        client = copy.copy(self)
        client.max_connections = max_connections
        client._budget = asyncio.Semaphore(max_connections)
        return client

    async def start(self) -> None:
        """Open the shared session (inside the running event loop)."""
        await self._shared.get()

    async def aclose(self) -> None:
        """Close the shared session and its connections (for every client sharing it)."""
        await self._shared.close()

    async def send(self, request: HttpRequest, *, timeout: float) -> HttpResponse:
        """Send ``request``; raise :class:`TransportError` when no HTTP answer arrives in time."""
        session = await self._shared.get()
        headers = dict(request.headers)
        if request.json is not None and request.data is None:
            headers.setdefault("Content-Type", "application/json; charset=utf-8")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                await self._budget.acquire()
        except TimeoutError:
            raise TransportError(
                f"no connection free within {timeout:g}s (all {self.max_connections} of this "
                "budget busy)"
            ) from None
        try:
            async with session.request(
                request.method,
                request.url,
                data=request.body_bytes(),
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=max(deadline - loop.time(), 0.001)),
            ) as response:
                body, truncated = await _read_body(response, request.max_response_bytes)
                return HttpResponse(
                    status=response.status,
                    headers={k.lower(): v for k, v in response.headers.items()},
                    body=body,
                    truncated=truncated,
                )
        except TimeoutError:
            raise TransportError(f"no answer within {timeout:g}s") from None
        except aiohttp.ClientConnectorError as exc:
            reason = exc.os_error.strerror or type(exc.os_error).__name__
            raise TransportError(f"cannot connect to {exc.host}:{exc.port} ({reason})") from None
        except aiohttp.ClientError as exc:
            raise TransportError(f"HTTP transport error ({type(exc).__name__})") from None
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise TransportError(f"network error ({type(exc).__name__})") from None
        except ValueError:
            raise TransportError("invalid URL") from None
        finally:
            self._budget.release()


# Path segments and query values this long may be credentials (a Mattermost hook id, a Slack or
# Discord token, a Workflows ``sig``); shorter ones ("hooks", "api-version") are not.


def _check_http_url(value: SecretStr) -> SecretStr:
    parsed = urlsplit(value.get_secret_value())
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        # The URL itself is a secret: say what is wrong without repeating it.
        raise ValueError("must be an http:// or https:// URL with a host")
    return value


SecretUrl = Annotated[SecretStr, AfterValidator(_check_http_url)]
"""An http(s) URL option whose value is a secret (webhook URLs carry their token)."""
