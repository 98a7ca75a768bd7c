"""The ``mattermost`` sink: a Mattermost incoming webhook, or a bot or personal access token.

With ``server_url``, ``token`` and ``channel_id`` each alert is one conversation (see
``mattermost_api``: ``/api/v4/posts``, ``root_id`` replies, ``PUT /api/v4/posts/{id}/patch``).

The post's ``text`` is the headline (severity and title) and the message text; one attachment
carries the severity colour, the title linked to the alert, and the facts as fields. Critical
alerts are posted with Mattermost's "urgent" message priority, high ones as "important".

Mattermost splits a ``text`` longer than 16,383 characters into several posts; notirouter cuts
it cleanly instead, so one alert is one post. Success is 200 ``ok``; errors are a JSON AppError
(``{"id", "message", ...}``) whose id and message go into the failure detail. An unknown hook
answers 400 (not 404) and disabled webhooks 501, both permanent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import Field, HttpUrl, SecretStr, model_validator

from notirouter import (
    MATTERMOST_ADDRESS,
    ActionReport,
    ChatAction,
    Click,
    ConversationMode,
    HttpRequest,
    HttpResponse,
    HttpSink,
    InteractiveSink,
    Message,
    Outcome,
    SecretUrl,
    SendResult,
    Severity,
    Sink,
    SinkContext,
    SinkOptions,
    classify_status,
    defuse_urls,
    escape_mattermost,
    escape_mattermost_plain,
    hookimpl,
)

from . import mattermost_actions, mattermost_api
from .api_base import ApiBase, token_mode_conversation, webhook_mode_lacks
from .common import (
    SEVERITY_COLOUR,
    SEVERITY_EMOJI,
    excerpt,
    expect_body,
    fit,
    fit_facts,
    fit_text,
    link_label,
    omitted_note,
    one_line,
    safe_link,
)

log = logging.getLogger("notirouter.sinks.mattermost")
# Mattermost's post limit, in Unicode code points (runes).
POST_TEXT_MAX = 16_383
TITLE_MAX = 500
LABEL_MAX = 500
FACT_NAME_MAX = 200
FACT_VALUE_MAX = 2_000
FACTS_BUDGET = 12_000
MAX_FACTS = 40
# A field this short (and on one line) is shown half-width, two per row.
SHORT_FIELD = 40


def _fallback(text: str) -> str:
    # Plain text where a notification may still link a URL: schemes keep a zero-width break.
    return defuse_urls(escape_mattermost_plain(text))


class MattermostOptions(SinkOptions):
    """Options of the ``mattermost`` sink."""

    url: SecretUrl | None = None
    server_url: ApiBase | None = None
    """Token mode: the server's base URL (https; plain http only on 127.0.0.1)."""
    token: SecretStr | None = Field(default=None, min_length=1, max_length=500)
    """Token mode: a bot account's or a personal access token."""
    channel_id: str | None = Field(default=None, pattern=r"^[a-z0-9]{26}$")
    """Token mode: the channel's id (26 characters)."""
    conversation: ConversationMode | None = None
    """Token mode: update, thread or update+thread (the default)."""
    actions: mattermost_actions.MattermostActions | None = None
    """Token mode: buttons acting on the alert (see README)."""
    channel: str | None = Field(default=None, pattern=r"^[#@]?[A-Za-z0-9_.\-]{1,128}$")
    """Post elsewhere than the hook's channel: a channel name, or ``@username``."""
    username: str | None = Field(default=None, min_length=1, max_length=64)
    """Shown as the author; needs "Enable integrations to override usernames" on the server."""
    icon_url: HttpUrl | None = None
    """Profile picture; needs "Enable integrations to override profile picture icons"."""
    icon_emoji: str | None = Field(default=None, pattern=r"^:?[a-z0-9_+\-]{1,64}:?$")
    """An emoji as profile picture (wins over ``icon_url``), e.g. ``rotating_light``."""
    urgent_from: Severity | None = Severity.CRITICAL
    """Post with "urgent" message priority from this severity up (``null``: never)."""
    important_from: Severity | None = Severity.HIGH
    """Post with "important" message priority from this severity up (``null``: never)."""

    @model_validator(mode="after")
    def _one_mode(self) -> MattermostOptions:
        token_mode = (self.server_url, self.token, self.channel_id)
        if self.url is not None:
            if any(value is not None for value in token_mode):
                raise ValueError(
                    "give either url (a webhook) or server_url, token and channel_id, not both"
                )
            if self.conversation is not None:
                raise ValueError(
                    "conversation needs server_url, token and channel_id: a webhook can only post"
                )
            if self.actions is not None:
                raise ValueError(
                    "actions need server_url, token and channel_id: a webhook post has no buttons"
                )
            return self
        if any(value is None for value in token_mode):
            raise ValueError("give url (a webhook), or server_url, token and channel_id")
        if self.channel or self.username or self.icon_url or self.icon_emoji:
            raise ValueError("channel, username and icons apply to a webhook url only")
        return self


class MattermostSink(HttpSink[MattermostOptions], InteractiveSink):
    """Posts a text and one coloured attachment to a Mattermost incoming webhook or the API."""

    type_name = "mattermost"
    interaction_service = "mattermost"
    Options = MattermostOptions
    # Mattermost's own rate limiter, when an administrator turns it on, defaults to 10/s.
    default_rate_limit = 10.0

    def __init__(self, name: str, options: MattermostOptions, context: SinkContext) -> None:
        super().__init__(name, options, context)
        # Cleared when the server refuses message priority (switched off by its admin): the
        # alert matters more than its priority, so the next attempt goes without it.
        self.send_priority = True

    def conversation(self) -> ConversationMode | None:
        """Token mode: the configured mode (default update+thread); webhook mode: none."""
        return token_mode_conversation(self.options.token, self.options.conversation)

    def conversation_support(self) -> str | None:
        """What ``check`` says: the mode, or what a webhook URL lacks."""
        if self.options.token is None:
            return webhook_mode_lacks("post", "server_url, token and channel_id")
        return super().conversation_support()

    def actions(self) -> mattermost_actions.MattermostActions | None:
        """The ``actions:`` options (token mode only)."""
        return self.options.actions

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> Click | None:
        """A click whose token this sink signed for the post it came from."""
        if self.options.actions is None:
            return None
        return mattermost_actions.verify(self.name, self.options.actions, body, now)

    def needs_confirmation(self, click: Click) -> bool:
        """Reject is confirmed by a second click: buttons here have no dialog."""
        return click.action is ChatAction.REJECT

    def answer(self, click: Click, *, armed: bool = False) -> dict[str, Any] | None:
        """An ephemeral text: what to do to confirm, or that the request is on its way."""
        return mattermost_actions.answer(click, armed=armed)

    async def tell(self, report: ActionReport) -> SendResult:
        """A reply under the post and its footer noted, or an ephemeral answer to the user."""
        assert self.options.token is not None  # actions need token mode, by validation
        assert self.options.server_url is not None
        assert self.options.channel_id is not None
        return await mattermost_actions.tell(
            self.context.http,
            self.options.server_url,
            self.options.token.get_secret_value(),
            self.options.channel_id,
            report,
            self.options.timeout,
        )

    def actions_support(self) -> str | None:
        """What ``check`` says of buttons."""
        if self.options.token is None:
            return "actions: none: a webhook URL cannot show buttons (give server_url and token)"
        if self.options.actions is None:
            return None
        return (
            "actions: acknowledge, reject (second click confirms), no comment (attachments"
            f" have no input), via {self.options.actions.public_url}/interactions/mattermost"
        )

    def build_request(self, message: Message) -> HttpRequest:
        """The webhook POST, or in token mode the API call (patch, reply or post)."""
        token = self.options.token
        if token is None:
            assert self.options.url is not None  # one of the two modes, by validation
            return HttpRequest(url=self.options.url.get_secret_value(), json=self.payload(message))
        assert self.options.server_url is not None
        assert self.options.channel_id is not None
        secret = token.get_secret_value()
        body = mattermost_api.post_body(
            self.payload(message), self.options.channel_id, message.reply_to
        )
        if message.update_of:
            actions = self.options.actions
            if actions is not None and message.action_target and not message.reply_to:
                body["props"]["attachments"][0]["actions"] = mattermost_actions.buttons(
                    self.name, actions, message.action_target, message.update_of, time.time()
                )
            patch = {"message": body["message"], "props": body["props"]}
            path = f"posts/{message.update_of}/patch"
            return mattermost_api.request(self.options.server_url, secret, path, patch, "PUT")
        return mattermost_api.request(self.options.server_url, secret, "posts", body)

    async def send(self, message: Message) -> SendResult:
        """Webhook mode: POST. Token mode: the API call; a post deleted meanwhile is posted anew."""
        if self.options.token is None:
            return await super().send(message)
        result = await self._call(message)
        if message.update_of and mattermost_api.edit_refused(result.detail):
            result = await self._call(message.model_copy(update={"update_of": None}))
        elif message.update_of:
            return result
        if result.reference and self._has_buttons(message):
            # A button's token names its post: only now that the post exists can it get them.
            buttoned = await self._call(message.model_copy(update={"update_of": result.reference}))
            if buttoned.outcome is not Outcome.DELIVERED:
                log.warning(
                    "sink %s: post %s has no buttons: %s",
                    self.name,
                    result.reference,
                    buttoned.detail,
                )
        return result

    def _has_buttons(self, message: Message) -> bool:
        return bool(self.options.actions and message.action_target and not message.reply_to)

    async def _call(self, message: Message) -> SendResult:
        request = self.build_request(message)
        response = await self.context.http.send(request, timeout=self.options.timeout)
        return mattermost_api.answer(response)

    def payload(self, message: Message) -> dict[str, Any]:
        """The webhook body."""
        severity = message.severity
        word = severity.value.upper()
        title = one_line(message.title)
        headline = (
            f"{SEVERITY_EMOJI[severity]} **{word}** · {fit(title, TITLE_MAX, escape_mattermost)}"
        )
        text = headline
        if message.text.strip():
            # Line breaks and paragraphs are kept: the post shows them as they are.
            room = POST_TEXT_MAX - len(headline) - 1
            text += "\n" + fit_text(message, room, escape_mattermost)
        attachment: dict[str, Any] = {
            # Notifications show the fallback as plain text; the apps never show it.
            "fallback": fit(f"{word}: {title}", TITLE_MAX, _fallback),
            "color": SEVERITY_COLOUR[severity],
        }
        link = safe_link(message.link)
        if link:
            # With a title_link, web and mobile show the title as the link's plain text:
            # nothing there is Markdown, so nothing is backslash-escaped.
            attachment["title"] = fit(title, TITLE_MAX, escape_mattermost_plain)
            attachment["title_link"] = link
            label = fit(link_label(message), LABEL_MAX, escape_mattermost)
            attachment["text"] = f"[{label}]({link})"
        else:
            attachment["title"] = fit(title, TITLE_MAX, escape_mattermost)
        fields = self._fields(message)
        if fields:
            attachment["fields"] = fields
        body: dict[str, Any] = {"text": text, "attachments": [attachment]}
        for key in ("channel", "username", "icon_emoji"):
            value = getattr(self.options, key)
            if value:
                body[key] = value
        if self.options.icon_url:
            body["icon_url"] = str(self.options.icon_url)
        priority = self._priority(severity)
        if priority:
            body["priority"] = {"priority": priority}
        return body

    def _fields(self, message: Message) -> list[dict[str, Any]]:
        rows, omitted = fit_facts(
            message.facts,
            escape=escape_mattermost,
            name_escape=escape_mattermost_plain,  # field titles are shown without Markdown
            name_limit=FACT_NAME_MAX,
            value_limit=FACT_VALUE_MAX,
            budget=FACTS_BUDGET,
            max_rows=MAX_FACTS,
        )
        fields: list[dict[str, Any]] = []
        for fact, (name, value) in zip(message.facts, rows, strict=False):
            if MATTERMOST_ADDRESS.search(fact.name):
                # A field title is not Markdown, and an address there would become a mailto
                # link: show the name above the value instead, where it can be escaped.
                name_limit = FACT_NAME_MAX
                name, value = (
                    "",
                    fit(one_line(fact.name), name_limit, escape_mattermost) + "\n" + value,
                )
            short = len(value) <= SHORT_FIELD and "\n" not in value
            fields.append({"title": name, "value": value, "short": short})
        if omitted:
            fields.append({"title": "…", "value": omitted_note(omitted), "short": False})
        return fields

    def _priority(self, severity: Severity) -> str | None:
        if not self.send_priority:
            return None
        for level, threshold in (
            ("urgent", self.options.urgent_from),
            ("important", self.options.important_from),
        ):
            if threshold is not None and severity.rank >= threshold.rank:
                return level
        return None

    def classify(self, response: HttpResponse) -> SendResult:
        """200 ``ok`` is success; otherwise report Mattermost's error id and message."""
        delivered = expect_body(response, "ok")
        if delivered is not None:
            return delivered
        result = classify_status(response)
        error = response.json()
        if not isinstance(error, dict) or "id" not in error:
            return result
        # "detailed_error" is left out: it may quote ids from the hook's own URL.
        detail = f"HTTP {response.status} {error['id']}: {excerpt(str(error.get('message', '')))}"
        if "post_priority" in str(error["id"]) and self.send_priority:
            self.send_priority = False
            return SendResult.retry(detail + " (sending again without message priority)")
        if response.status == 501:  # incoming webhooks are disabled on this server
            return SendResult.permanent(detail)
        if result.outcome is Outcome.RETRY:
            return SendResult.retry(detail, after=result.retry_after)
        return SendResult.permanent(detail)


@hookimpl
def register_sinks(register: Callable[[type[Sink[Any]]], None]) -> None:
    """Provide the ``mattermost`` sink."""
    register(MattermostSink)
