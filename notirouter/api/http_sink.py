"""Base class for sinks that POST to a webhook URL.

The sink builds the request and classifies the response; the core sends it over the shared
session with the sink's timeout. Teams, Slack, Mattermost, Discord and the generic webhook sink
all stand on this class.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from notirouter.api.http import HttpRequest, HttpResponse
from notirouter.api.message import Message
from notirouter.api.sink import OptionsT, SendResult, Sink

# 408 Request Timeout, 425 Too Early and 429 Too Many Requests are the 4xx answers worth
# retrying: every other 4xx means the request itself is wrong and will stay wrong.
RETRYABLE_4XX = frozenset({408, 425, 429})


def classify_status(response: HttpResponse) -> SendResult:
    """The usual reading of an HTTP answer: 2xx delivered, 408/425/429/5xx retry, else permanent."""
    status = response.status
    if 200 <= status < 300:
        return SendResult.delivered(f"HTTP {status}")
    detail = f"HTTP {status}" + _body_excerpt(response)
    if status in RETRYABLE_4XX or status >= 500:
        return SendResult.retry(detail, after=response.retry_after())
    if 300 <= status < 400:
        return SendResult.permanent(f"HTTP {status}: redirect not followed")
    return SendResult.permanent(detail)


def _body_excerpt(response: HttpResponse, limit: int = 200) -> str:
    text = " ".join(response.text().split())
    if not text:
        return ""
    return ": " + (text if len(text) <= limit else text[:limit] + "…")


class HttpSink(Sink[OptionsT]):
    """A sink whose delivery is one HTTP request.

    Implement :meth:`build_request`; override :meth:`classify` when the service signals
    success or failure in its own way (Teams legacy connectors answer 200 with an error body).
    """

    @abstractmethod
    def build_request(self, message: Message) -> HttpRequest:
        """The request that delivers ``message``."""

    def classify(self, response: HttpResponse) -> SendResult:
        """Read the service's answer; the default is :func:`classify_status`."""
        return classify_status(response)

    def render(self, message: Message) -> Any:
        """The JSON body (or the raw text body) that :meth:`send` would POST."""
        request = self.build_request(message)
        if request.json is not None:
            return request.json
        return request.body_bytes().decode("utf-8", errors="replace")

    async def send(self, message: Message) -> SendResult:
        """POST the message over the shared client and classify the answer."""
        request = self.build_request(message)
        response = await self.context.http.send(request, timeout=self.options.timeout)
        # Secrets a service echoes in its answer are redacted by the core for every sink.
        return self.classify(response)
