"""The ``discord`` sink: a Discord channel webhook, with one embed.

``content`` is the headline (severity and title: what a notification shows); the embed has
the severity colour, the title linked to the alert, the text, the facts as fields and a link
line. ``allowed_mentions: {"parse": []}`` means no text can ping anyone, whatever it says.

The request asks ``?wait=true``: Discord then answers 200 with the message, and reports a
message it did not save, which it would silently drop otherwise (204). On 429 the JSON body's
``retry_after`` (float seconds) is used before the ``Retry-After`` header; 404 ("Unknown
Webhook") is permanent and must not be retried, or Discord restricts the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import Field, HttpUrl

from notirouter import (
    HttpRequest,
    HttpResponse,
    HttpSink,
    Message,
    Outcome,
    SecretUrl,
    SendResult,
    Sink,
    SinkOptions,
    classify_status,
    escape_discord,
    hookimpl,
)

from .common import (
    SEVERITY_COLOUR,
    SEVERITY_EMOJI,
    excerpt,
    fit,
    fit_facts,
    fit_text,
    link_label,
    omitted_note,
    one_line,
    safe_link,
    utf16_len,
)

# Discord's limits (characters; measured here in UTF-16 units, never fewer than Discord's).
CONTENT_MAX = 2_000
EMBED_TITLE_MAX = 256
EMBED_DESCRIPTION_MAX = 4_096
EMBED_FIELDS_MAX = 25
FIELD_NAME_MAX = 256
FIELD_VALUE_MAX = 1_024
FOOTER_MAX = 2_048
EMBED_TOTAL_MAX = 6_000
# Our share of the 6,000 for the fields; the description takes what is left.
FACTS_BUDGET = 3_000
LABEL_MAX = 256


class DiscordOptions(SinkOptions):
    """Options of the ``discord`` sink."""

    url: SecretUrl
    username: str | None = Field(default=None, min_length=1, max_length=80)
    """Overrides the webhook's name for this message."""
    avatar_url: HttpUrl | None = None
    """Overrides the webhook's avatar."""
    thread_id: str | None = Field(default=None, pattern=r"^[0-9]{1,25}$")
    """Post into this thread of the channel (required for forum channels)."""
    burst: int = Field(default=5, ge=1, le=1000)
    """Discord's per-webhook bucket allows 5 requests back to back."""


class DiscordSink(HttpSink[DiscordOptions]):
    """Posts a headline and one embed to a Discord webhook."""

    type_name = "discord"
    Options = DiscordOptions
    # Discord's webhook bucket is 5 requests per 2 seconds, and a channel takes about 30
    # webhook messages a minute: bursts of 5 (the default ``burst``), then one every 2 s.
    default_rate_limit = 0.5

    def build_request(self, message: Message) -> HttpRequest:
        """POST the message as JSON, asking Discord to confirm it saved it (``wait=true``)."""
        parts = urlsplit(self.options.url.get_secret_value())
        query = dict(parse_qsl(parts.query))
        query["wait"] = "true"
        if self.options.thread_id:
            query["thread_id"] = self.options.thread_id
        url = urlunsplit(parts._replace(query=urlencode(query)))
        return HttpRequest(url=url, json=self.payload(message))

    def payload(self, message: Message) -> dict[str, Any]:
        """The webhook body."""
        severity = message.severity
        word = severity.value.upper()
        title = one_line(message.title)
        # The headline is the notification: the whole title, up to Discord's content limit.
        prefix = f"{SEVERITY_EMOJI[severity]} **{word}** · "
        content = prefix + fit(title, CONTENT_MAX - utf16_len(prefix), escape_discord, utf16_len)
        embed: dict[str, Any] = {
            "title": fit(title, EMBED_TITLE_MAX, escape_discord, utf16_len),
            "color": int(SEVERITY_COLOUR[severity].lstrip("#"), 16),
            "footer": {"text": f"{word} severity"},
        }
        link = safe_link(message.link)
        link_line = ""
        if link:
            embed["url"] = link
            label = fit(link_label(message), LABEL_MAX, escape_discord, utf16_len)
            link_line = f"[{label}]({link})"
        fields = self._fields(message)
        if fields:
            embed["fields"] = fields
        used = utf16_len(embed["title"]) + utf16_len(embed["footer"]["text"])
        used += sum(utf16_len(f["name"]) + utf16_len(f["value"]) for f in fields)
        room = min(EMBED_DESCRIPTION_MAX, EMBED_TOTAL_MAX - used) - utf16_len(link_line) - 2
        text = message.text.strip()
        description = fit_text(message, room, escape_discord, utf16_len) if text else ""
        description = "\n\n".join(part for part in (description, link_line) if part)
        if description:
            embed["description"] = description
        body: dict[str, Any] = {
            "content": content,
            "embeds": [embed],
            "allowed_mentions": {"parse": []},
        }
        if self.options.username:
            body["username"] = self.options.username
        if self.options.avatar_url:
            body["avatar_url"] = str(self.options.avatar_url)
        return body

    def _fields(self, message: Message) -> list[dict[str, Any]]:
        rows, omitted = fit_facts(
            message.facts,
            escape=escape_discord,
            name_limit=FIELD_NAME_MAX,
            value_limit=FIELD_VALUE_MAX,
            budget=FACTS_BUDGET,
            max_rows=EMBED_FIELDS_MAX - 1,  # room for the "more facts" note
            measure=utf16_len,
        )
        fields: list[dict[str, Any]] = [
            {"name": name, "value": value, "inline": utf16_len(value) <= 40} for name, value in rows
        ]
        if omitted:
            fields.append({"name": "…", "value": omitted_note(omitted), "inline": False})
        return fields

    def classify(self, response: HttpResponse) -> SendResult:
        """2xx is success; 429 waits ``retry_after`` from the body; Discord's code is reported."""
        result = classify_status(response)
        error = response.json()
        if result.outcome is Outcome.DELIVERED or not isinstance(error, dict):
            return result
        detail = f"HTTP {response.status}"
        if "code" in error:
            detail += f" code {error['code']}"
        detail += f": {excerpt(str(error.get('message', '')))}"
        if response.status == 429:
            if error.get("global"):
                detail += " (global rate limit)"
            after = error.get("retry_after")
            if isinstance(after, int | float) and not isinstance(after, bool):
                wait: float | None = max(0.0, float(after))
            else:
                wait = response.retry_after()
            return SendResult.retry(detail, after=wait)
        if result.outcome is Outcome.RETRY:
            return SendResult.retry(detail, after=result.retry_after)
        return SendResult.permanent(detail)


@hookimpl
def register_sinks(register: Callable[[type[Sink[Any]]], None]) -> None:
    """Provide the ``discord`` sink."""
    register(DiscordSink)
