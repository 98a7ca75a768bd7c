"""The ``webhook`` sink: POST JSON to any URL.

By default the body is the whole Message plus the event and its enrichment, so a downstream
program gets everything without a template. ``payload`` replaces it with a Jinja2 template that
must render JSON (use ``| tojson`` for values).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal

from jinja2 import TemplateError
from pydantic import Field, SecretStr

from notirouter import (
    HttpRequest,
    HttpSink,
    Message,
    SecretUrl,
    SendResult,
    Sink,
    SinkContext,
    TemplateText,
    hookimpl,
    json_bytes,
    make_environment,
)
from notirouter import SinkOptions as BaseOptions


class WebhookOptions(BaseOptions):
    """Options of the ``webhook`` sink."""

    url: SecretUrl
    method: Literal["POST", "PUT"] = "POST"
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    """Extra request headers; values are treated as secrets (e.g. ``Authorization``)."""
    payload: TemplateText | None = None
    """A Jinja2 template rendering the JSON body; variables: ``message``, ``event``, enrichment."""
    concurrency: int = Field(default=32, ge=1, le=256)


class PayloadTemplateError(ValueError):
    """The payload template rendered something that is not JSON."""


class WebhookSink(HttpSink[WebhookOptions]):
    """Posts the message (or a templated body) as JSON."""

    type_name = "webhook"
    Options = WebhookOptions

    def __init__(self, name: str, options: WebhookOptions, context: SinkContext) -> None:
        super().__init__(name, options, context)
        self._template = (
            make_environment().from_string(options.payload) if options.payload is not None else None
        )

    def body(self, message: Message) -> Any:
        """The JSON value to send."""
        if self._template is None:
            return message.model_dump(mode="json")
        variables = {
            **message.enrichment,
            "message": message.summary(),
            "event": message.event,
            "enrichment": message.enrichment,
        }
        try:
            return json.loads(self._template.render(variables))
        except TemplateError as exc:
            raise PayloadTemplateError(f"the payload template failed: {exc.message}") from None
        except ValueError as exc:
            raise PayloadTemplateError(f"the payload template did not render JSON: {exc}") from None

    def build_request(self, message: Message) -> HttpRequest:
        """POST (or PUT) the body with the configured headers."""
        headers = {k: v.get_secret_value() for k, v in self.options.headers.items()}
        return HttpRequest(
            url=self.options.url.get_secret_value(),
            method=self.options.method,
            data=json_bytes(self.body(message)),
            headers={"Content-Type": "application/json; charset=utf-8", **headers},
        )

    def render(self, message: Message) -> Any:
        """The JSON body that would be sent."""
        return self.body(message)

    async def send(self, message: Message) -> SendResult:
        """Send; a template that renders invalid JSON is permanent (it will not improve)."""
        try:
            return await super().send(message)
        except PayloadTemplateError as exc:
            return SendResult.permanent(str(exc))


@hookimpl
def register_sinks(register: Callable[[type[Sink[Any]]], None]) -> None:
    """Provide the ``webhook`` sink."""
    register(WebhookSink)
