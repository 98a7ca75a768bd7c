"""The ``slack`` sink: a Slack incoming webhook, with Block Kit and a ``text`` fallback.

The blocks: a header (severity emoji and title), a context line with the severity word, the
text, the facts as section fields, and a button to the link. Every block stays within Slack's
limits, and the whole message stays well under the ~13,000 characters of block text beyond
which Slack has been seen to reject a message.

Slack answers ``ok`` with 200; errors are plain-text codes with their own statuses
(``invalid_payload`` 400, ``action_prohibited`` 403, ``channel_not_found`` 404,
``channel_is_archived`` 410), and 429 with ``Retry-After`` when over about one message per
second. App webhooks ignore ``channel``, ``username`` and icons, so there are no such options.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from notirouter import (
    HttpRequest,
    HttpResponse,
    HttpSink,
    Message,
    SecretUrl,
    SendResult,
    Sink,
    SinkOptions,
    classify_status,
    escape_plain,
    escape_slack,
    hookimpl,
)

from ._chat import (
    SEVERITY_EMOJI,
    expect_body,
    fit,
    fit_facts,
    link_label,
    omitted_note,
    one_line,
    safe_link,
)

# Block Kit limits (characters).
HEADER_MAX = 150
SECTION_TEXT_MAX = 3_000
FIELD_TEXT_MAX = 2_000
FIELDS_PER_SECTION = 10
MAX_BLOCKS = 50  # per message; ours has at most 9
BUTTON_TEXT_MAX = 75
BUTTON_URL_MAX = 3_000
# Our own budget for all fields together, and the number of field sections, so that the
# total block text stays far from the undocumented ~13k ceiling.
FACTS_BUDGET = 8_000
MAX_FIELD_SECTIONS = 4
FACT_NAME_MAX = 150
FALLBACK_TEXT_MAX = 3_000


class SlackOptions(SinkOptions):
    """Options of the ``slack`` sink."""

    url: SecretUrl


class SlackSink(HttpSink[SlackOptions]):
    """Posts Block Kit messages to a Slack incoming webhook."""

    type_name = "slack"
    Options = SlackOptions
    # Slack allows about one message per second per webhook, with short bursts.
    default_rate_limit = 1.0

    def build_request(self, message: Message) -> HttpRequest:
        """POST the message as JSON to the configured URL."""
        return HttpRequest(url=self.options.url.get_secret_value(), json=self.payload(message))

    def payload(self, message: Message) -> dict[str, Any]:
        """The webhook body: blocks, a fallback ``text``, and no link previews."""
        severity = message.severity
        emoji = SEVERITY_EMOJI[severity]
        word = severity.value.upper()
        title = one_line(message.title)
        header = fit(f"{emoji} {title}", HEADER_MAX, escape_plain)
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"*{word}* severity"}]},
        ]
        text = message.text.strip()
        if text:
            section_text = fit(text, SECTION_TEXT_MAX, escape_slack)
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": section_text}})
        blocks.extend(self._fact_blocks(message))
        link = safe_link(message.link)
        if link and len(link) <= BUTTON_URL_MAX:
            label = fit(link_label(message), BUTTON_TEXT_MAX, escape_plain)
            button = {"type": "button", "text": {"type": "plain_text", "text": label}, "url": link}
            blocks.append({"type": "actions", "elements": [button]})
        fallback = fit(f"{emoji} {word}: {title}", FALLBACK_TEXT_MAX, escape_slack)
        return {
            "text": fallback,
            "blocks": blocks,
            "unfurl_links": False,
            "unfurl_media": False,
        }

    def _fact_blocks(self, message: Message) -> list[dict[str, Any]]:
        # A field is "*name*\nvalue": 3 characters of markup around the two escaped parts.
        rows, omitted = fit_facts(
            message.facts,
            escape=escape_slack,
            name_limit=FACT_NAME_MAX,
            value_limit=FIELD_TEXT_MAX - FACT_NAME_MAX - 3,
            budget=FACTS_BUDGET,
            max_rows=FIELDS_PER_SECTION * MAX_FIELD_SECTIONS,
            row_cost=3,
        )
        fields = [{"type": "mrkdwn", "text": f"*{name}*\n{value}"} for name, value in rows]
        blocks: list[dict[str, Any]] = [
            {"type": "section", "fields": fields[start : start + FIELDS_PER_SECTION]}
            for start in range(0, len(fields), FIELDS_PER_SECTION)
        ]
        if omitted:
            note = {"type": "mrkdwn", "text": f"_{omitted_note(omitted)}_"}
            blocks.append({"type": "context", "elements": [note]})
        return blocks

    def classify(self, response: HttpResponse) -> SendResult:
        """200 ``ok`` is success; Slack's error codes come as the body of a 4xx/5xx."""
        return expect_body(response, "ok") or classify_status(response)


@hookimpl
def register_sinks(register: Callable[[type[Sink[Any]]], None]) -> None:
    """Provide the ``slack`` sink."""
    register(SlackSink)
