"""Reading the Sekoia.io REST API: bounded retries, and clear reports of a refused key.

Sekoia.io documents 401 (key missing, expired or invalid), 403 (key lacks the permission) and
429 (rate limit; wait before retrying). 429, 408, 5xx, timeouts and connection errors are
retried with exponential backoff and jitter, honouring ``Retry-After``; other answers are final.
After a run of failures for lack of the API, a circuit breaker (:mod:`.sekoia_circuit`) makes
calls fail fast for a while instead of each paying the whole retry budget.
A refused key is logged once per period, not once per event (an alert storm with an expired key
would otherwise bury every other log line), and calls pause for a while after one: every call
after a 401 (the key is bad), only calls to the same kind of object after a 403 (the key lacks
that one permission).

The API key only ever goes into the ``Authorization`` header: never into a log line, an error
or a URL.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from pydantic import SecretStr

from notirouter import HttpClient, HttpRequest, HttpResponse, TransportError

from .circuit import Circuit, CircuitOpen

log = logging.getLogger("notirouter.plugins.sekoia")
RETRIED_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_DETAIL_CHARS = 200


OUTAGE_STATUSES = frozenset({408, 500, 502, 503, 504})
"""Answers that say the API is not there (with timeouts and connection errors): the circuit
breaker counts them. 429 and 425 say it is there but busy: ``Retry-After`` handles those."""
CIRCUIT_OPEN = "Sekoia.io API unavailable (circuit open)"


class SekoiaApiError(Exception):
    """A request failed for good; the message is safe to show and log.

    ``status`` is the last HTTP status (``None`` when no answer came); ``auth`` is true for a
    refused key (401/403); ``reported`` is true when the failure was already logged its own
    way (a refused key, once per period; an open circuit, when it opened), so it need not be
    logged per event.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        auth: bool = False,
        reported: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.auth = auth
        self.reported = reported or auth


@dataclass(frozen=True, slots=True)
class RetrySettings:
    """How hard to try: attempts, per-attempt timeout, backoff, longest wait, overall bound."""

    attempts: int = 4
    timeout: float = 10.0
    backoff_initial: float = 0.5
    backoff_max: float = 10.0
    max_wait: float = 30.0
    deadline: float = 60.0

    def backoff(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (1-based): exponential, with jitter."""
        ceiling = min(self.backoff_max, self.backoff_initial * 2.0 ** (attempt - 1))
        return ceiling * random.uniform(0.5, 1.0)


REFUSAL_ADVICE: dict[str, tuple[str, str]] = {
    "alert": ("alerts", 'give the key the SIC_READ_ALERT permission ("View alerts")'),
    "comment": (
        "alert comments",
        "give the key the permission to read alert comments, or set fetch_comments: false",
    ),
    "case": (
        "cases",
        "give the key the permission to read cases, or stop enriching case events with it",
    ),
}
"""Object kind -> (what a 403 refused, how to fix it), for the log line of a refused key."""


class AuthReport:
    """Logs a refused key once per ``interval`` seconds, with how many failures it summarises.

    Each kind of refusal (a rejected key, or a 403 on alerts, comments or cases) has its own
    period: a key that may not read cases must not hide, for five minutes, that it may not
    read alerts either.
    """

    def __init__(self, enricher: str, interval: float) -> None:
        self.enricher = enricher
        self.interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def refused(self, status: int, what: str) -> None:
        """Record a 401/403 on objects of kind ``what``; log it unless logged recently."""
        kind = "key" if status == 401 else what
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return
        suppressed = self._suppressed.pop(kind, 0)
        more = f" ({suppressed} more since the last report)" if suppressed else ""
        self._last[kind] = now
        if status == 401:
            reason = "rejected the API key (HTTP 401: missing, expired or invalid)"
            fix = "set a valid key in api_key"
        else:
            objects, fix = REFUSAL_ADVICE.get(what, (what + "s", "check the key's permissions"))
            reason = f"refused to let the API key read {objects} (HTTP 403: permission missing)"
        log.error(
            "enricher %s: Sekoia.io %s; notifications go out without these details; %s%s. "
            "Next report in %gs at the earliest.",
            self.enricher,
            reason,
            fix,
            more,
            self.interval,
        )


class SekoiaApi:
    """GET JSON objects from one Sekoia.io API base URL with one API key."""

    def __init__(
        self,
        http: HttpClient,
        *,
        base: str,
        api_key: SecretStr,
        retry: RetrySettings,
        auth_report: AuthReport,
        auth_pause: float,
        circuit: Circuit,
    ) -> None:
        self.http = http
        self.base = base
        self._api_key = api_key
        self.retry = retry
        self.auth_report = auth_report
        self.auth_pause = auth_pause
        self.circuit = circuit
        # Paused calls: "key" (a 401: the key is bad for everything) or an object kind (a 403:
        # the key lacks the permission for that endpoint only) -> (until, the error to repeat).
        self._paused: dict[str, tuple[float, SekoiaApiError]] = {}
        self.calls = 0  # requests sent, for tests and debugging

    async def get_object(
        self, path: str, params: Mapping[str, str], what: str
    ) -> dict[str, object]:
        """GET ``base + path`` and return its JSON object; raise :class:`SekoiaApiError`.

        ``path`` must already be built from validated ids; ``what`` names the object in
        messages ("alert", "case", "comment").
        """
        for pause in ("key", what):
            paused = self._paused.get(pause)
            if paused is not None:
                until, error = paused
                if time.monotonic() < until:
                    raise SekoiaApiError(str(error), status=error.status, auth=True)
                del self._paused[pause]
        url = self.base + path + ("?" + urlencode(params) if params else "")
        request = HttpRequest(
            url=url,
            method="GET",
            headers={
                "Authorization": "Bearer " + self._api_key.get_secret_value(),
                "Accept": "application/json",
            },
        )
        # The whole fetch is bounded by ``deadline``, so that it ends well within the routing
        # worker's lease, whatever the per-attempt timeout, backoff and Retry-After say.
        deadline = time.monotonic() + self.retry.deadline
        reason, status, made = "", None, 0
        while True:
            made += 1
            retry_after: float | None = None
            timeout = max(0.001, min(self.retry.timeout, deadline - time.monotonic()))
            try:
                response = await self._send(request, timeout)
            except TransportError as exc:
                status, reason = None, str(exc)
            else:
                status = response.status
                if 200 <= status < 300:
                    return _json_object(response, what)
                if status in (401, 403):
                    raise self._auth_failure(status, what)
                if status not in RETRIED_STATUSES:
                    reason = _final_reason(response, what, self._api_key.get_secret_value())
                    raise SekoiaApiError(reason, status=status)
                reason = f"HTTP {status}"
                retry_after = response.retry_after()
            if made >= self.retry.attempts:
                break
            if self.circuit.is_open:
                # This failure (or another call's) opened it: waiting to retry would only end
                # in the same refusal.
                raise SekoiaApiError(CIRCUIT_OPEN, status=status, reported=True)
            wait = retry_after if retry_after is not None else self.retry.backoff(made)
            if wait > self.retry.max_wait:
                raise SekoiaApiError(
                    f"Sekoia.io API busy ({reason}, asked to wait {wait:g}s; "
                    f"more than retry_wait_max {self.retry.max_wait:g}s)",
                    status=status,
                )
            if time.monotonic() + wait >= deadline:
                break
            log.debug("%s fetch failed (%s); retry %d in %.3gs", what, reason, made, wait)
            await asyncio.sleep(wait)
        raise SekoiaApiError(
            f"Sekoia.io API unavailable after {made} attempt{'s' * (made > 1)}: {reason}",
            status=status,
        )

    async def send_once(
        self, method: str, path: str, body: Mapping[str, object] | None = None
    ) -> HttpResponse:
        """One request with the key, no retry (a write: the caller's durable job retries it).

        Raises :class:`~notirouter.TransportError` when no answer came, and
        :class:`SekoiaApiError` when the circuit is open.
        """
        request = HttpRequest(
            url=self.base + path,
            method=method,
            json=dict(body) if body is not None else None,
            headers={
                "Authorization": "Bearer " + self._api_key.get_secret_value(),
                "Accept": "application/json",
            },
        )
        return await self._send(request, self.retry.timeout)

    def redact(self, text: str) -> str:
        """``text`` with the API key replaced (an error body may quote it)."""
        key = self._api_key.get_secret_value()
        return text.replace(key, "***") if key else text

    async def _send(self, request: HttpRequest, timeout: float) -> HttpResponse:
        """One request, through the circuit breaker (which it tells how the request went)."""
        try:
            probe = self.circuit.admit()
        except CircuitOpen:
            raise SekoiaApiError(CIRCUIT_OPEN, reported=True) from None
        try:
            self.calls += 1
            response = await self.http.send(request, timeout=timeout)
        except TransportError as exc:
            self.circuit.failed(probe, str(exc))
            raise
        except BaseException:
            self.circuit.abandoned(probe)  # e.g. cancelled at shutdown: no verdict on the API
            raise
        if response.status in OUTAGE_STATUSES:
            self.circuit.failed(probe, f"HTTP {response.status}")
        else:
            self.circuit.succeeded(probe)
        return response

    def _auth_failure(self, status: int, what: str) -> SekoiaApiError:
        self.auth_report.refused(status, what)
        if status == 401:
            error = SekoiaApiError("Sekoia.io API key rejected (HTTP 401)", status=401, auth=True)
        else:
            error = SekoiaApiError(
                f"Sekoia.io API key may not read {what}s (HTTP 403)", status=403, auth=True
            )
        if self.auth_pause > 0:
            # A 401 says the key itself is bad: every endpoint would refuse it. A 403 says only
            # this endpoint is out of the key's permissions: alerts may still be readable when
            # comments or cases are not, so the pause must not stop them.
            pause = "key" if status == 401 else what
            self._paused[pause] = (time.monotonic() + self.auth_pause, error)
        return error


def _json_object(response: HttpResponse, what: str) -> dict[str, object]:
    try:
        value = response.json()
    except RecursionError:  # json gives up on nesting deeper than the interpreter's stack
        value = None
    if not isinstance(value, dict):
        raise SekoiaApiError(
            f"Sekoia.io API answered the {what} request with something other than a JSON object",
            status=response.status,
        )
    return value


def _final_reason(response: HttpResponse, what: str, api_key: str) -> str:
    if response.status == 404:
        return f"{what} not found in Sekoia.io (HTTP 404)"
    if 300 <= response.status < 400:
        return f"Sekoia.io API redirected (HTTP {response.status}); check base_url"
    try:
        body = response.json()
    except RecursionError:
        body = None
    detail = body.get("message") if isinstance(body, dict) else None
    if not detail:
        return f"Sekoia.io API refused the {what} request (HTTP {response.status})"
    # The API may quote the key it was sent ("invalid token sk-..."). The reason reaches
    # notification text, the queue and every sink: the key goes before the text is cut, or a
    # cut through the key would leave its first characters.
    text = str(detail).replace(api_key, "***") if api_key else str(detail)
    text = " ".join(text.split())[:MAX_DETAIL_CHARS]
    return f"Sekoia.io API refused the {what} request (HTTP {response.status}): {text}"
