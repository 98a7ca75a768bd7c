"""The ``teams`` sink: Microsoft Teams, through a Workflows webhook or a legacy connector.

Workflows (Power Automate, "When a Teams webhook request is received") is the default: one
Adaptive Card per request, success on any 2xx. Office 365 connectors are retired, but an old
URL may still work: ``format: messagecard`` sends a MessageCard and reads the connector's
answer, which says ``1`` on success and reports throttling inside a 200 (a Workflows URL given
a MessageCard answers 202 with an empty body).

Workflows never tells the sender that a card was rejected (the flow fails in its run history),
so every card is built to be valid (the tests check it against the Adaptive Card schema) and
to stay under the ~28 KB limit of the "Post card" action.

A flow whose trigger admits only "Any user in my tenant" (the default for new flows) needs an
Entra ID token: with ``auth:`` the sink sends one (:mod:`plugins.chat.teams_auth`), and after a
401 fetches a new one and tries once more. Office 365 connector URLs are refused at load: the
connectors are retired and Teams no longer delivers to them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import field_validator

from notirouter import (
    HttpRequest,
    HttpResponse,
    HttpSink,
    Message,
    SecretUrl,
    SendResult,
    Severity,
    Sink,
    SinkContext,
    SinkOptions,
    classify_status,
    escape_teams,
    escape_teams_plain,
    hookimpl,
    json_bytes,
)

from .common import (
    SEVERITY_COLOUR,
    SEVERITY_EMOJI,
    excerpt,
    fit,
    fit_facts,
    fit_text,
    json_len,
    link_label,
    omitted_note,
    one_line,
    safe_link,
    severity_badge,
)
from .teams_auth import TeamsAuth, TokenSource, send_authorised

# Teams rejects messages over about 28 KB; whether that is 28,000 or 28,672 bytes is not
# documented, so stay under 27,000 bytes of JSON for the whole request, as others do.
PAYLOAD_BUDGET = 27_000
TITLE_BYTES = 600
LABEL_BYTES = 200
FACT_NAME_BYTES = 300
FACT_VALUE_BYTES = 3_000
FACTS_BUDGET = 12_000
MAX_FACTS = 40
# JSON around one fact: {"title":"","value":""}, (a MessageCard's "name" is shorter).
FACT_OVERHEAD = 26

ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
# Each severity looks different even without colour: its own word, container style, text
# colour, size and weight (CRITICAL and HIGH must never look alike).
CONTAINER_STYLE: dict[Severity, str] = {
    Severity.CRITICAL: "attention",
    Severity.HIGH: "warning",
    Severity.MEDIUM: "accent",
    Severity.LOW: "good",
    Severity.INFO: "emphasis",
}
TEXT_COLOUR: dict[Severity, str] = {
    Severity.CRITICAL: "attention",
    Severity.HIGH: "warning",
    Severity.MEDIUM: "accent",
    Severity.LOW: "good",
    Severity.INFO: "default",
}
BADGE_SIZE: dict[Severity, str] = {
    Severity.CRITICAL: "ExtraLarge",
    Severity.HIGH: "Large",
    Severity.MEDIUM: "Medium",
    Severity.LOW: "Default",
    Severity.INFO: "Small",
}
BADGE_WEIGHT: dict[Severity, str] = {
    Severity.CRITICAL: "Bolder",
    Severity.HIGH: "Bolder",
    Severity.MEDIUM: "Default",
    Severity.LOW: "Default",
    Severity.INFO: "Lighter",
}
# A legacy connector reports failures in the body of a 200: "... returned HTTP error 429 ...".
_CONNECTOR_ERROR = re.compile(r"HTTP error (\d{3})")
RETIRED_CONNECTOR = (
    "this is a retired Office 365 connector URL, and Teams no longer delivers to connectors. "
    "Create a Workflows webhook instead: in Teams, on the channel's ... menu choose Workflows, "
    'then the template "Post to a channel when a webhook request is received" (or, in Power '
    'Automate, a flow triggered by "When a Teams webhook request is received" that posts the '
    "card), and put the URL it shows here"
)


def is_retired_connector(url: str) -> bool:
    """Whether ``url`` is an Office 365 connector's (``*.webhook.office.com/webhookb2/…``)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().rstrip(".")
    path = parts.path.lower()
    if host == "webhook.office.com" or host.endswith(".webhook.office.com"):
        return path.startswith("/webhookb2/")
    if host in ("outlook.office.com", "outlook.office365.com"):
        return path.startswith("/webhook/")
    return False


class TeamsOptions(SinkOptions):
    """Options of the ``teams`` sink."""

    url: SecretUrl
    format: Literal["workflows", "messagecard"] = "workflows"
    """``workflows`` (Adaptive Card) or ``messagecard`` (legacy Office 365 connector)."""
    card_version: Literal["1.2", "1.3", "1.4", "1.5"] = "1.4"
    """Adaptive Card version; Workflows has been seen rejecting anything above 1.4."""
    full_width: bool = True
    """Let the card use the whole width of the channel (``msteams.width: Full``)."""
    auth: TeamsAuth | None = None
    """Entra ID app credentials, for a flow that only "Any user in my tenant" may trigger."""

    @field_validator("url")
    @classmethod
    def _refuse_retired_connector(cls, url: Any) -> Any:
        # The message says what to do and never repeats the URL: it holds the credential.
        if is_retired_connector(url.get_secret_value()):
            raise ValueError(RETIRED_CONNECTOR)
        return url


def _text_markdown(text: str) -> str:
    # TextBlock is Markdown: a single newline does not break the line, an empty line does.
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n\n".join(escape_teams(line) for line in lines)


class TeamsSink(HttpSink[TeamsOptions]):
    """Posts an Adaptive Card to a Teams Workflows webhook (or a MessageCard to a connector)."""

    type_name = "teams"
    Options = TeamsOptions
    # Teams throttles incoming webhooks above 4 requests per second.
    default_rate_limit = 4.0

    def __init__(self, name: str, options: TeamsOptions, context: SinkContext) -> None:
        super().__init__(name, options, context)
        auth = options.auth
        self.tokens = None if auth is None else TokenSource(auth, context.http)

    def conversation_support(self) -> str | None:
        """Workflows webhooks answer 202 without an id: every message is a post of its own."""
        return "posts every message: a Workflows webhook cannot edit, reply or return an id"

    def actions_support(self) -> str | None:
        """No buttons that call back: Workflows cards cannot submit (a Teams bot could)."""
        return "actions: none: a Workflows webhook's cards cannot call back (only links)"

    async def send(self, message: Message) -> SendResult:
        """POST the card; with ``auth``, as a bearer of the current token (renewed after a 401)."""
        if self.tokens is None:
            return await super().send(message)
        request = self.build_request(message)
        return await send_authorised(
            self.tokens, self.context.http, request, self.options.timeout, self.classify
        )

    def build_request(self, message: Message) -> HttpRequest:
        """POST the card as JSON to the configured URL."""
        return HttpRequest(url=self.options.url.get_secret_value(), json=self.payload(message))

    def payload(self, message: Message) -> dict[str, Any]:
        """The request body, always under :data:`PAYLOAD_BUDGET` bytes of JSON."""
        build = self._adaptive if self.options.format == "workflows" else self._message_card
        rows, omitted = fit_facts(
            message.facts,
            escape=escape_teams,
            name_limit=FACT_NAME_BYTES,
            value_limit=FACT_VALUE_BYTES,
            budget=FACTS_BUDGET,
            max_rows=MAX_FACTS,
            measure=json_len,
            row_cost=FACT_OVERHEAD,
        )
        if omitted:
            rows.append(("…", omitted_note(omitted)))

        def with_text(text: str) -> dict[str, Any]:
            return build(message, text, rows)

        # The text takes whatever room the rest of the card leaves (measured with a one-byte
        # text, since an empty one leaves its whole TextBlock out).
        room = PAYLOAD_BUDGET - len(json_bytes(with_text("x"))) + 1
        return with_text(fit_text(message, room, _text_markdown, json_len))

    def _adaptive(self, message: Message, text: str, rows: list[tuple[str, str]]) -> dict[str, Any]:
        severity = message.severity
        title = fit(one_line(message.title), TITLE_BYTES, escape_teams_plain, json_len)
        body: list[dict[str, Any]] = [
            {
                "type": "Container",
                "style": CONTAINER_STYLE[severity],
                "bleed": True,
                "items": [
                    {
                        "type": "TextBlock",
                        "text": severity_badge(severity),
                        "size": BADGE_SIZE[severity],
                        "weight": BADGE_WEIGHT[severity],
                        "color": TEXT_COLOUR[severity],
                        "wrap": True,
                    },
                    # A TextRun is never read as Markdown: the title shows exactly as it is.
                    {
                        "type": "RichTextBlock",
                        "inlines": [
                            {"type": "TextRun", "text": title, "weight": "Bolder", "size": "Large"}
                        ],
                    },
                ],
            }
        ]
        if text:
            body.append({"type": "TextBlock", "text": text, "wrap": True})
        if rows:
            facts = [{"title": name, "value": value} for name, value in rows]
            body.append({"type": "FactSet", "facts": facts})
        card: dict[str, Any] = {
            "type": "AdaptiveCard",
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "version": self.options.card_version,
            "fallbackText": f"{severity.value.upper()}: {title}",
            "body": body,
        }
        link = safe_link(message.link)
        if link:
            label = fit(link_label(message), LABEL_BYTES, escape_teams_plain, json_len)
            card["actions"] = [{"type": "Action.OpenUrl", "title": label, "url": link}]
        if self.options.full_width:
            card["msteams"] = {"width": "Full"}
        attachment = {"contentType": ADAPTIVE_CARD, "contentUrl": None, "content": card}
        # The activity's summary is the notification preview; without it Teams shows "Card".
        return {"type": "message", "summary": card["fallbackText"], "attachments": [attachment]}

    def _message_card(
        self, message: Message, text: str, rows: list[tuple[str, str]]
    ) -> dict[str, Any]:
        severity = message.severity
        title = fit(one_line(message.title), TITLE_BYTES, escape_teams, json_len)
        section: dict[str, Any] = {"activityTitle": severity_badge(severity), "markdown": True}
        if text:
            section["text"] = text
        if rows:
            section["facts"] = [{"name": name, "value": value} for name, value in rows]
        card: dict[str, Any] = {
            "@type": "MessageCard",
            "@context": "http://schema.org/extensions",
            "summary": fit(one_line(message.title), TITLE_BYTES, escape_teams_plain, json_len),
            "themeColor": SEVERITY_COLOUR[severity].lstrip("#"),
            "title": f"{SEVERITY_EMOJI[severity]} {title}",
            "sections": [section],
        }
        link = safe_link(message.link)
        if link:
            label = fit(link_label(message), LABEL_BYTES, escape_teams_plain, json_len)
            target = {"os": "default", "uri": link}
            card["potentialAction"] = [{"@type": "OpenUri", "name": label, "targets": [target]}]
        return card

    def classify(self, response: HttpResponse) -> SendResult:
        """Workflows: any 2xx is success. MessageCard: a body of ``1``, or a 202 with none.

        A legacy connector answers ``1``; a Workflows URL also takes a MessageCard and answers
        202 with an empty body. Any other 2xx is a permanent failure, unless its body reports
        a retryable HTTP error: retrying an unexplained 2xx would post the card again if it had
        in fact arrived, while a dead letter can be replayed once the answer is understood.
        """
        if self.options.format == "workflows" or not 200 <= response.status < 300:
            return classify_status(response)
        body = response.text().strip()
        if body == "1":
            return SendResult.delivered(f"HTTP {response.status} 1")
        if response.status == 202 and not body:
            return SendResult.delivered("HTTP 202 accepted")
        detail = f"HTTP {response.status} but the connector says: {excerpt(body) or '(empty)'}"
        error = _CONNECTOR_ERROR.search(body)
        if error is None:
            return SendResult.permanent(detail)
        # "... returned HTTP error 429 ...": the connector reports its failures inside a 200.
        code = int(error.group(1))
        if code in (408, 425, 429) or code >= 500:
            return SendResult.retry(detail, after=response.retry_after())
        return SendResult.permanent(detail)


@hookimpl
def register_sinks(register: Callable[[type[Sink[Any]]], None]) -> None:
    """Provide the ``teams`` sink."""
    register(TeamsSink)
