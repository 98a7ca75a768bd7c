"""The ``slack`` sink: a Slack incoming webhook or a bot token, with Block Kit and a fallback.

With a bot ``token`` and ``channel`` the sink keeps one conversation per alert
(``chat.postMessage``, ``chat.update``, ``thread_ts`` replies: see ``slack_api``); with a
webhook ``url`` it posts every message.

The blocks: a header (severity emoji, word and title), a context line with the severity in
its own style, the text (then, if it was cut, a line linking to the whole), the facts as
section fields, and a button to the link. Every value from the message is a ``plain_text``
object; the only ``mrkdwn`` is notirouter's own, ``verbatim``. Every block stays within Slack's
limits, and the whole message stays well under the ~13,000 characters of block text beyond
which Slack has been seen to reject a message.

Slack answers ``ok`` with 200; errors are plain-text codes with their own statuses
(``invalid_payload`` 400, ``action_prohibited`` 403, ``channel_not_found`` 404,
``channel_is_archived`` 410), and 429 with ``Retry-After`` when over about one message per
second. App webhooks ignore ``channel``, ``username`` and icons, so there are no such options.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import Field, SecretStr, model_validator

from notirouter import (
    TRUNCATION_MARKER,
    ActionReport,
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
    SinkOptions,
    classify_status,
    escape_plain,
    escape_slack,
    hookimpl,
)

from . import slack_actions, slack_api
from .api_base import ApiBase, token_mode_conversation, webhook_mode_lacks
from .common import (
    SEVERITY_EMOJI,
    expect_body,
    fit,
    fit_facts,
    fit_text,
    link_label,
    omitted_note,
    one_line,
    safe_link,
)

_ZWSP = "\u200b"  # what escape_plain puts after a "<", "&" or "@" it makes inert

# Block Kit limits (characters).
HEADER_MAX = 150
SECTION_TEXT_MAX = 3_000
FIELD_TEXT_MAX = 2_000
FIELDS_PER_SECTION = 10
MAX_BLOCKS = 50  # per message; ours has at most 9
BUTTON_TEXT_MAX = 75
BUTTON_URL_MAX = 3_000
# Our own budget for all block text together, about 1,000 below the ~13,200 characters beyond
# which Slack has rejected a message (msg_blocks_too_long), and for the fields within it.
BLOCK_TEXT_BUDGET = 12_000
MAX_TEXT_SECTIONS = 4
CUT_NOTE_RESERVE = 200
FACTS_BUDGET = 8_000
MAX_FIELD_SECTIONS = 4
FACT_NAME_MAX = 150
FALLBACK_TEXT_MAX = 3_000

# The severity in words, in a style of its own: the higher, the louder. HIGH and CRITICAL
# differ in their word (and emoji), not only in colour.
SEVERITY_LINE: dict[Severity, str] = {
    Severity.INFO: "{} INFO severity",
    Severity.LOW: "{} LOW severity",
    Severity.MEDIUM: "{} *MEDIUM* severity",
    Severity.HIGH: "{} *HIGH* severity",
    Severity.CRITICAL: "{} *CRITICAL* severity",
}


class SlackOptions(SinkOptions):
    """Options of the ``slack`` sink: a webhook ``url``, or a bot ``token`` and ``channel``."""

    url: SecretUrl | None = None
    token: SecretStr | None = Field(default=None, min_length=1, max_length=500)
    channel: str | None = Field(default=None, min_length=1, max_length=200)
    api_url: ApiBase = Field(
        default="https://slack.com/api", description="The Web API base (token mode)."
    )
    conversation: ConversationMode | None = Field(
        default=None, description="Token mode: update, thread or update+thread (the default)."
    )
    actions: slack_actions.SlackActions | None = Field(
        default=None, description="Token mode: buttons acting on the alert (see README)."
    )

    @model_validator(mode="after")
    def _one_mode(self) -> SlackOptions:
        if self.url is not None and (self.token is not None or self.channel is not None):
            raise ValueError("give either url (a webhook) or token and channel (a bot), not both")
        if self.url is None and (self.token is None or self.channel is None):
            raise ValueError("give url (a webhook), or token and channel (a bot)")
        if self.url is not None and self.conversation is not None:
            raise ValueError("conversation needs token and channel: a webhook URL can only post")
        if self.url is not None and self.actions is not None:
            raise ValueError("actions need token and channel: a webhook message has no buttons")
        return self


class SlackSink(HttpSink[SlackOptions], InteractiveSink):
    """Posts Block Kit messages to a Slack incoming webhook, or through the Web API."""

    type_name = "slack"
    interaction_service = "slack"
    Options = SlackOptions
    # Slack allows about one message per second per webhook, with short bursts.
    default_rate_limit = 1.0

    def conversation(self) -> ConversationMode | None:
        """Token mode: the configured mode (default update+thread); webhook mode: none."""
        return token_mode_conversation(self.options.token, self.options.conversation)

    def conversation_support(self) -> str | None:
        """What ``check`` says: the mode, or what a webhook URL lacks."""
        if self.options.token is None:
            return webhook_mode_lacks("message", "token and channel")
        return super().conversation_support()

    def actions(self) -> slack_actions.SlackActions | None:
        """The ``actions:`` options (token mode only)."""
        return self.options.actions

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> Click | None:
        """A click signed with this sink's signing secret, recent, about this sink's messages."""
        if self.options.actions is None:
            return None
        return slack_actions.verify(self.name, self.options.actions, headers, body, now)

    def replay_mark(self, headers: Mapping[str, str]) -> str | None:
        """The request's signature: one request is taken once."""
        return "slack:" + headers.get("x-slack-signature", "")

    async def is_allowed(self, click: Click, allow: list[str]) -> bool:
        """A listed user id, or a member of a listed user group (``S...``)."""
        if click.user_id in allow:
            return True
        token = self.options.token
        if token is None:
            return False
        for group in (entry for entry in allow if entry.startswith("S")):
            if await slack_actions.in_user_group(
                self.context.http,
                self.options.api_url,
                token.get_secret_value(),
                group,
                click.user_id,
                self.options.timeout,
            ):
                return True
        return False

    async def tell(self, report: ActionReport) -> SendResult:
        """A thread reply and the root message's note, or an ephemeral answer to the user."""
        assert self.options.token is not None  # actions need token mode, by validation
        return await slack_actions.tell(
            self.context.http,
            self.options.api_url,
            self.options.token.get_secret_value(),
            report,
            self.options.timeout,
        )

    def actions_support(self) -> str | None:
        """What ``check`` says of buttons."""
        if self.options.token is None:
            return "actions: none: a webhook URL cannot show buttons (give token and channel)"
        if self.options.actions is None:
            return None
        return "actions: acknowledge, reject (confirmed), comment, via POST /interactions/slack"

    def build_request(self, message: Message) -> HttpRequest:
        """The webhook POST, or in token mode the Web API call (update, reply or post)."""
        token = self.options.token
        if token is None:
            assert self.options.url is not None  # one of the two modes, by validation
            return HttpRequest(url=self.options.url.get_secret_value(), json=self.payload(message))
        body = self.payload(message)
        if message.update_of:
            channel, ts = slack_api.parse_reference(message.update_of)
            body.update(channel=channel, ts=ts)
            return slack_api.request(
                self.options.api_url, "chat.update", token.get_secret_value(), body
            )
        body["channel"] = self.options.channel
        if message.reply_to:
            body["thread_ts"] = slack_api.parse_reference(message.reply_to)[1]
        return slack_api.request(
            self.options.api_url, "chat.postMessage", token.get_secret_value(), body
        )

    async def send(self, message: Message) -> SendResult:
        """Webhook mode: POST. Token mode: the Web API call, returning the message reference.

        An edit that Slack refuses (deleted, too old) becomes a new post, whose reference
        replaces the old one.
        """
        if self.options.token is None:
            return await super().send(message)
        result = await self._call(message)
        if message.update_of and slack_api.edit_refused(result):
            return await self._call(message.model_copy(update={"update_of": None}))
        return result

    async def _call(self, message: Message) -> SendResult:
        response = await self.context.http.send(
            self.build_request(message), timeout=self.options.timeout
        )
        result, body = slack_api.answer(response)
        channel, ts = body.get("channel"), body.get("ts")
        if result.outcome is Outcome.DELIVERED and isinstance(channel, str) and isinstance(ts, str):
            return SendResult.delivered("ok", reference=slack_api.reference(channel, ts))
        return result

    def payload(self, message: Message) -> dict[str, Any]:
        """The webhook body: blocks, a fallback ``text``, and no link previews.

        Every value from the message goes into a ``plain_text`` object (mrkdwn cannot escape
        ``*``, ``_``, ``~`` or backticks); the only ``mrkdwn`` is our own (the severity, the
        note on a cut text), ``verbatim`` so that Slack links nothing in it by itself.
        """
        severity = message.severity
        emoji = SEVERITY_EMOJI[severity]
        title = one_line(message.title)
        header = fit(f"{emoji} {severity.label}: {title}", HEADER_MAX, escape_plain)
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": _plain(header)},
            {"type": "context", "elements": [_mrkdwn(SEVERITY_LINE[severity].format(emoji))]},
        ]
        link = safe_link(message.link)
        tail = self._fact_blocks(message)
        if link and len(link) <= BUTTON_URL_MAX:
            label = fit(link_label(message), BUTTON_TEXT_MAX, escape_plain)
            button = {"type": "button", "text": _plain(label), "url": link}
            tail.append({"type": "actions", "elements": [button]})
        if self.options.actions is not None and message.action_target and not message.reply_to:
            tail.extend(slack_actions.action_blocks(self.name, message.action_target))
        # The text gets what the other blocks leave of the budget: at least one section.
        used = block_text_length([*blocks, *tail]) + CUT_NOTE_RESERVE
        room = max(SECTION_TEXT_MAX, BLOCK_TEXT_BUDGET - used)
        blocks.extend(self._text_blocks(message, link, room))
        blocks.extend(tail)
        # Notifications and screen readers read this text; with mrkdwn off, Slack still finds
        # "<!here>" and links in it, which escape_slack makes inert.
        fallback = fit(f"{emoji} {severity.label}: {title}", FALLBACK_TEXT_MAX, escape_slack)
        return {
            "text": fallback,
            "mrkdwn": False,
            "blocks": blocks,
            "unfurl_links": False,
            "unfurl_media": False,
        }

    def _text_blocks(self, message: Message, link: str | None, room: int) -> list[dict[str, Any]]:
        # Plain text keeps the paragraphs and line breaks as they are, over as many sections
        # as it needs. A text longer than the room left is cut with the marker, and a note
        # says where the whole of it is.
        text = message.text.strip()
        if not text:
            return []
        limit = min(room, SECTION_TEXT_MAX * MAX_TEXT_SECTIONS)
        shown = fit_text(message, limit, escape_plain)  # a digest: whole lines, then the count
        blocks: list[dict[str, Any]] = [
            {"type": "section", "text": _plain(part)}
            for part in split_sections(shown, SECTION_TEXT_MAX)
        ]
        if shown.endswith(TRUNCATION_MARKER) and link:
            target = link.replace("&", "&amp;")
            note = f"Text cut at {limit:,} characters to fit Slack's limits. Full text: <{target}>"
            blocks.append({"type": "context", "elements": [_mrkdwn(note)]})
        return blocks

    def _fact_blocks(self, message: Message) -> list[dict[str, Any]]:
        # A field is "name\nvalue": one character between the two escaped parts.
        rows, omitted = fit_facts(
            message.facts,
            escape=escape_plain,
            name_limit=FACT_NAME_MAX,
            value_limit=FIELD_TEXT_MAX - FACT_NAME_MAX - 1,
            budget=FACTS_BUDGET,
            max_rows=FIELDS_PER_SECTION * MAX_FIELD_SECTIONS,
            row_cost=1,
        )
        fields = [_plain(f"{name}\n{value}") for name, value in rows]
        blocks: list[dict[str, Any]] = [
            {"type": "section", "fields": fields[start : start + FIELDS_PER_SECTION]}
            for start in range(0, len(fields), FIELDS_PER_SECTION)
        ]
        if omitted:
            blocks.append({"type": "context", "elements": [_plain(omitted_note(omitted))]})
        return blocks

    def classify(self, response: HttpResponse) -> SendResult:
        """200 ``ok`` is success; Slack's error codes come as the body of a 4xx/5xx."""
        return expect_body(response, "ok") or classify_status(response)


def split_sections(text: str, limit: int) -> list[str]:
    """``text`` in parts of at most ``limit`` characters, split at a paragraph, else a line,
    else a space; a hard split never separates a sign from the zero-width space after it."""
    parts: list[str] = []
    while len(text) > limit:
        for separator in ("\n\n", "\n", " "):
            cut = text.rfind(separator, 0, limit + 1 - len(separator))
            if cut > limit // 2:
                parts.append(text[:cut])
                text = text[cut + len(separator) :]
                break
        else:
            cut = limit - 1 if text[limit] == _ZWSP else limit
            parts.append(text[:cut])
            text = text[cut:]
    parts.append(text)
    return [part for part in parts if part.strip()]


def block_text_length(blocks: list[dict[str, Any]]) -> int:
    """Characters of text in ``blocks``: what Slack's undocumented ceiling counts."""
    objects: list[dict[str, Any]] = []
    for block in blocks:
        objects.extend([block["text"]] if "text" in block else block.get("fields", []))
        for element in block.get("elements", []):
            objects.append(element["text"] if element["type"] == "button" else element)
    return sum(len(obj["text"]) for obj in objects)


def _plain(text: str) -> dict[str, Any]:
    # emoji: false, so that a ":fire:" typed in an alert shows as typed.
    return {"type": "plain_text", "text": text, "emoji": False}


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text, "verbatim": True}


@hookimpl
def register_sinks(register: Callable[[type[Sink[Any]]], None]) -> None:
    """Provide the ``slack`` sink."""
    register(SlackSink)
