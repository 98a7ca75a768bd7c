"""The ``discord`` sink: a Discord channel webhook, with one embed.

``content`` is the headline (severity and title: what a notification shows); the embed has
the severity colour, the title linked to the alert, the text, the facts as fields and a link
line. ``allowed_mentions: {"parse": []}`` means no text can ping anyone, whatever it says.

Conversations: the answer's message ``id`` is the reference; later messages ``PATCH
/webhooks/{id}/{token}/messages/{id}`` (``update``, the default). A webhook cannot open a
thread under a message; in a forum channel (``forum: true``) the first message opens a post
(``thread_name``) and replies go into it (``thread_id``), so ``thread`` and ``update+thread``
need ``forum``.

The request asks ``?wait=true``: Discord then answers 200 with the message, and reports a
message it did not save, which it would silently drop otherwise (204). On 429 the JSON body's
``retry_after`` (float seconds) is used before the ``Retry-After`` header; 404 ("Unknown
Webhook") is permanent and must not be retried, or Discord restricts the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import Field, HttpUrl, model_validator

from notirouter import (
    ConversationMode,
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
THREAD_NAME_MAX = 100
# Discord's answer when the message to edit is gone (JSON code 10008).
UNKNOWN_MESSAGE = "HTTP 404 code 10008"


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
    forum: bool = False
    """The webhook's channel is a forum: each conversation's first message opens a post."""
    conversation: ConversationMode = ConversationMode.UPDATE
    """``update`` (edit the first message); ``thread``/``update+thread`` need ``forum``."""

    @model_validator(mode="after")
    def _threads_need_a_forum(self) -> DiscordOptions:
        if self.forum and self.thread_id:
            raise ValueError("give forum or thread_id, not both: a forum post is its own thread")
        if self.conversation.replies and not self.forum:
            raise ValueError(
                f"conversation {self.conversation.value} needs forum: true (a webhook can only"
                " reply in a thread, and only a forum post opens one per alert)"
            )
        return self


class DiscordSink(HttpSink[DiscordOptions]):
    """Posts a headline and one embed to a Discord webhook."""

    type_name = "discord"
    Options = DiscordOptions
    # Discord's webhook bucket is 5 requests per 2 seconds, and a channel takes about 30
    # webhook messages a minute: bursts of 5 (the default ``burst``), then one every 2 s.
    default_rate_limit = 0.5

    def conversation(self) -> ConversationMode:
        """The configured mode: ``update`` by default (edit the first message)."""
        return self.options.conversation

    def actions_support(self) -> str | None:
        """A plain webhook's messages carry link buttons only."""
        return "actions: none: a webhook's messages carry link buttons only"

    def build_request(self, message: Message) -> HttpRequest:
        """POST the message as JSON, asking Discord to confirm it saved it (``wait=true``).

        ``update_of``: PATCH that message instead; ``reply_to``: post into its forum post.
        """
        parts = urlsplit(self.options.url.get_secret_value())
        query = dict(parse_qsl(parts.query))
        thread = self.options.thread_id
        path = parts.path
        body = self.payload(message)
        if message.update_of:
            message_id, thread = parse_reference(message.update_of)
            path = f"{path.rstrip('/')}/messages/{message_id}"
            # An edit keeps the author the message was posted with.
            body.pop("username", None)
            body.pop("avatar_url", None)
        elif message.reply_to:
            thread = parse_reference(message.reply_to)[1]
        elif self.options.forum:
            body["thread_name"] = fit(one_line(message.title), THREAD_NAME_MAX, _as_is, utf16_len)
        if not message.update_of:
            query["wait"] = "true"
        if thread:
            query["thread_id"] = thread
        url = urlunsplit(parts._replace(path=path, query=urlencode(query)))
        method = "PATCH" if message.update_of else "POST"
        return HttpRequest(url=url, method=method, json=body)

    async def send(self, message: Message) -> SendResult:
        """Post (returning the message's reference) or edit; a refused edit posts anew."""
        result = await self._send(message)
        if message.update_of and result.detail.startswith(UNKNOWN_MESSAGE):
            # Deleted meanwhile: a new first message, whose reference replaces the old one.
            return await self._send(message.model_copy(update={"update_of": None}))
        return result

    async def _send(self, message: Message) -> SendResult:
        request = self.build_request(message)
        response = await self.context.http.send(request, timeout=self.options.timeout)
        result = self.classify(response)
        answer = response.json()
        if result.outcome is not Outcome.DELIVERED or not isinstance(answer, dict):
            return result
        message_id, channel = answer.get("id"), answer.get("channel_id")
        if not isinstance(message_id, str):
            return result
        # In a thread (a forum post, a configured thread) edits must name it: keep its id.
        in_thread = self.options.forum or self.options.thread_id
        thread = channel if in_thread and isinstance(channel, str) else ""
        if message.update_of:
            thread = parse_reference(message.update_of)[1]
        return SendResult.delivered(result.detail, reference=f"{message_id} {thread}".strip())

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


def parse_reference(value: str) -> tuple[str, str]:
    """A stored reference's message id and thread id (empty: the channel itself)."""
    message_id, _, thread = value.partition(" ")
    return message_id, thread


def _as_is(text: str) -> str:
    # A forum post's name is plain text: no markdown to escape.
    return text


@hookimpl
def register_sinks(register: Callable[[type[Sink[Any]]], None]) -> None:
    """Provide the ``discord`` sink."""
    register(DiscordSink)
