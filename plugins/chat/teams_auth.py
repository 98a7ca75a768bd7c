"""Entra ID tokens for Teams Workflows flows restricted to "Any user in my tenant".

Such a flow's HTTP trigger wants ``Authorization: Bearer <token>`` with the flow service as
audience (``https://service.flow.microsoft.com/`` in the public cloud). The sink obtains the
token by the client-credentials grant of an app registration, at
``{authority}/{tenant}/oauth2/v2.0/token`` with scope ``{audience}/.default``: the audience
ends with a slash, so the scope has two (``…microsoft.com//.default``); with one, Entra ID
issues a token whose audience the flow refuses (``MisMatchingOAuthClaims``).

One token serves every delivery of the sink until shortly before it expires; deliveries that
need a new one at the same moment share a single request (:class:`TokenSource`). Requests go
through the sink's own HTTP client, so they count against its connection budget.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr, field_validator

from notirouter import HttpClient, HttpRequest, HttpResponse, SendResult

DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
PUBLIC_CLOUD_AUDIENCE = "https://service.flow.microsoft.com/"
# Renew this long before the token expires (Entra ID tokens live 60-90 minutes), so that a
# token never expires between being read and reaching the flow.
REFRESH_MARGIN_SECONDS = 300.0
# When an answer omits expires_in, keep its token only briefly.
UNKNOWN_LIFETIME_SECONDS = 300.0
TOKEN_RESPONSE_BYTES = 64 * 1024
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# A tenant is named by its id or one of its domains (contoso.onmicrosoft.com).
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}")
_RETRYABLE = frozenset({408, 425, 429})


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class TeamsAuth(BaseModel):
    """``auth:`` of a ``teams`` sink: the app registration that may trigger the flow."""

    model_config = ConfigDict(extra="forbid")

    tenant_id: str
    """The directory (tenant) id, or a domain of the tenant."""
    client_id: str
    """The application (client) id of the app registration."""
    client_secret: SecretStr
    """A client secret of that app (its value, not its id)."""
    authority: str = DEFAULT_AUTHORITY
    """Entra ID's sign-in address: another for a sovereign cloud, loopback in tests."""
    audience: str = PUBLIC_CLOUD_AUDIENCE
    """The flow service's audience: another for a sovereign cloud."""

    @field_validator("tenant_id")
    @classmethod
    def _check_tenant(cls, value: str) -> str:
        if not _TENANT.fullmatch(value.strip()):
            raise ValueError("tenant_id must be the tenant's id (a GUID) or one of its domains")
        return value.strip()

    @field_validator("client_id")
    @classmethod
    def _check_client(cls, value: str) -> str:
        if not _UUID.fullmatch(value.strip()):
            raise ValueError("client_id must be the application (client) id, a GUID")
        return value.strip()

    @field_validator("client_secret")
    @classmethod
    def _check_secret(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("client_secret must not be empty")
        return value

    @field_validator("authority")
    @classmethod
    def _check_authority(cls, value: str) -> str:
        # The client secret is sent there: only over HTTPS, or to this machine.
        parts = urlsplit(value.strip())
        host = parts.hostname or ""
        secure = parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(host))
        if not host or not secure or parts.username or parts.password:
            raise ValueError(
                "authority must be an https:// URL such as https://login.microsoftonline.com "
                "(http:// only on a loopback address)"
            )
        if parts.query or parts.fragment:
            raise ValueError("authority must not contain a query or a fragment")
        return value.strip().rstrip("/")

    @field_validator("audience")
    @classmethod
    def _check_audience(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("audience must be an https:// URL such as " + PUBLIC_CLOUD_AUDIENCE)
        return value.strip()

    @property
    def token_url(self) -> str:
        """The tenant's v2.0 token endpoint."""
        return f"{self.authority}/{self.tenant_id}/oauth2/v2.0/token"

    @property
    def scope(self) -> str:
        """``{audience}/.default``, keeping the audience's own trailing slash."""
        return f"{self.audience}/.default"


class TokenError(Exception):
    """No token: what to do with the delivery that needed it (never a secret in it)."""

    def __init__(self, result: SendResult) -> None:
        super().__init__(result.detail)
        self.result = result


def _token_failure(response: HttpResponse) -> TokenError:
    data = response.json()
    detail = f"Entra ID token request: HTTP {response.status}"
    if isinstance(data, dict):
        code, description = data.get("error"), data.get("error_description")
        if isinstance(code, str):
            detail += f" {code[:80]}"
        if isinstance(description, str) and description.strip():
            # "AADSTS7000215: Invalid client secret provided. …\r\nTrace ID: …": the first line.
            detail += ": " + description.strip().splitlines()[0][:300]
    status = response.status
    if status in _RETRYABLE or status >= 500:
        return TokenError(SendResult.retry(detail, after=response.retry_after()))
    # Wrong tenant, client, secret, scope or authority: every delivery would fail alike until
    # the config is fixed, so the sink pauses and keeps its messages.
    return TokenError(SendResult.misconfigured(detail + " (check the sink's auth:)"))


def _lifetime(value: Any) -> float:
    try:
        seconds = float(value)  # Entra ID v2.0 sends a number; v1.0 a string of digits
    except (TypeError, ValueError):
        return UNKNOWN_LIFETIME_SECONDS
    return seconds if 0 < seconds < 1e7 else UNKNOWN_LIFETIME_SECONDS


class TokenSource:
    """The sink's current token: cached, renewed shortly before expiry, fetched once at a time."""

    def __init__(self, auth: TeamsAuth, http: HttpClient) -> None:
        self.auth = auth
        self.http = http
        self._token: str | None = None
        self._renew_at = 0.0
        self._pending: asyncio.Task[str] | None = None

    async def token(self, timeout: float) -> str:
        """A valid token; raise :class:`TokenError` or ``TransportError`` when none comes."""
        if self._token is not None and time.monotonic() < self._renew_at:
            return self._token
        if self._pending is None:
            pending = asyncio.ensure_future(self._fetch(timeout))
            pending.add_done_callback(self._settled)
            self._pending = pending
        # Shielded: a delivery that gives up does not cancel the fetch the others wait for.
        return await asyncio.shield(self._pending)

    def forget(self, token: str) -> None:
        """The flow refused ``token``: the next call fetches a new one (once, for everyone)."""
        if self._token == token:
            self._token = None

    def _settled(self, task: asyncio.Task[str]) -> None:
        self._pending = None
        if not task.cancelled():
            task.exception()  # retrieved here, so nobody waiting is no "never retrieved" warning

    async def _fetch(self, timeout: float) -> str:
        form = urlencode(
            {
                "grant_type": "client_credentials",
                "client_id": self.auth.client_id,
                "client_secret": self.auth.client_secret.get_secret_value(),
                "scope": self.auth.scope,
            }
        ).encode()
        request = HttpRequest(
            url=self.auth.token_url,
            data=form,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
            max_response_bytes=TOKEN_RESPONSE_BYTES,
        )
        started = time.monotonic()
        response = await self.http.send(request, timeout=timeout)
        if response.status != 200:
            raise _token_failure(response)
        data = response.json()
        token = data.get("access_token") if isinstance(data, dict) else None
        # It goes into a header: printable ASCII without spaces, or it is no token.
        if not isinstance(token, str) or not token or not all("!" <= c <= "~" for c in token):
            raise TokenError(SendResult.retry("Entra ID token request: no access_token in 200"))
        lifetime = _lifetime(data.get("expires_in"))
        self._token = token
        self._renew_at = started + lifetime - min(REFRESH_MARGIN_SECONDS, lifetime / 2)
        return token


def _remaining(deadline: float) -> float:
    # Out of time, a tiny timeout makes the client fail at once with its transport error.
    return max(deadline - time.monotonic(), 0.001)


async def _post(
    http: HttpClient, request: HttpRequest, token: str, deadline: float
) -> HttpResponse:
    headers = {**request.headers, "Authorization": f"Bearer {token}"}
    authorised = dataclasses.replace(request, headers=headers)
    return await http.send(authorised, timeout=_remaining(deadline))


async def send_authorised(
    tokens: TokenSource,
    http: HttpClient,
    request: HttpRequest,
    timeout: float,
    classify: Callable[[HttpResponse], SendResult],
) -> SendResult:
    """Send ``request`` as a bearer of the current token; after a 401, once more with a new one.

    The token request and both posts share the one ``timeout``. A second 401 means the flow
    does not admit this app: a configuration error (the sink pauses, the message is kept).
    """
    deadline = time.monotonic() + timeout
    try:
        token = await tokens.token(_remaining(deadline))
        response = await _post(http, request, token, deadline)
        if response.status == 401:
            tokens.forget(token)
            token = await tokens.token(_remaining(deadline))
            response = await _post(http, request, token, deadline)
            if response.status == 401:
                return SendResult.misconfigured(
                    "HTTP 401 with a new token: the flow does not accept this app (check the "
                    'trigger\'s "Who can trigger the flow", the tenant and the audience of the '
                    "sink's auth:)"
                )
    except TokenError as exc:
        return exc.result
    result = classify(response)
    # A flow echoing the request would put the token in the detail; the core redacts only the
    # configured secrets, and the token is obtained at run time.
    if token in result.detail:
        result = dataclasses.replace(result, detail=result.detail.replace(token, "***"))
    return result
