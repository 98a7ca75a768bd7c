"""The teams sink: every card valid against the Adaptive Card 1.5 schema, sizes, answers."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from jsonschema.exceptions import best_match
from markdown_it import MarkdownIt

from notirouter.api.escape import ZERO_WIDTH_SPACE
from notirouter.api.http import json_bytes
from notirouter.api.message import Fact, Message, Severity
from notirouter.api.sink import Outcome
from notirouter.delivery.dispatcher import attempt, sink_redactor
from tests.chat_helpers import SECRET, build_sink, walk_strings
from tests.chat_messages import ALERT, ALL, HOSTILE, HUGE, ONE_PER_SEVERITY
from tests.loopback import LoopbackServer, Reply
from tests.render_corpus import FIELDS, corpus, message_with
from tests.service_renderers import service_renderers

# The official Adaptive Cards 1.5 schema, copied byte for byte (see conformance/README.md), so
# the test needs nothing outside the checkout.
SCHEMA_PATH = Path(__file__).resolve().parent / "conformance" / "adaptive-card-1.5.schema.json"
BUDGET = 27_000
VERSIONS = ("1.2", "1.3", "1.4", "1.5")


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft6Validator:
    assert SCHEMA_PATH.is_file(), f"the Adaptive Card schema is missing: {SCHEMA_PATH}"
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft6Validator.check_schema(schema)
    return jsonschema.Draft6Validator(schema)


def card_of(payload: dict[str, Any]) -> dict[str, Any]:
    """The one Adaptive Card of a Workflows payload, after checking the envelope."""
    assert payload["type"] == "message"
    assert len(payload["attachments"]) == 1
    attachment = payload["attachments"][0]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["contentUrl"] is None
    card: dict[str, Any] = attachment["content"]
    return card


def assert_valid(validator: jsonschema.Draft6Validator, card: dict[str, Any]) -> None:
    # The schema is strict and does not know Teams' own "msteams" extension.
    bare = copy.deepcopy(card)
    bare.pop("msteams", None)
    error = best_match(validator.iter_errors(bare))
    assert error is None, f"{error.message} at {list(error.absolute_path)}"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", sorted(ALL))
def test_every_card_is_a_valid_adaptive_card_within_budget(
    validator: jsonschema.Draft6Validator, name: str, version: str
) -> None:
    sink = build_sink("teams", card_version=version)
    request = sink.build_request(ALL[name])
    card = card_of(request.json)
    assert_valid(validator, card)
    assert card["version"] == version  # the schema only says "a string"
    assert card["type"] == "AdaptiveCard"
    assert len(request.body_bytes()) <= BUDGET
    kinds = {v for p, v in walk_strings(card) if p.endswith("type")}
    assert not kinds & {"Action.Submit", "Action.Execute"}


@pytest.mark.parametrize("field", FIELDS)
def test_cards_with_hostile_values_are_valid(
    validator: jsonschema.Draft6Validator, field: str
) -> None:
    for value in corpus(field).values():
        assert_valid(validator, card_of(build_sink("teams").render(message_with(field, value))))


def test_default_card_version_is_1_4_and_full_width() -> None:
    card = card_of(build_sink("teams").render(ALERT))
    assert card["version"] == "1.4"
    assert card["msteams"] == {"width": "Full"}
    assert "msteams" not in card_of(build_sink("teams", full_width=False).render(ALERT))


def test_unsupported_card_version_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="card_version"):
        build_sink("teams", card_version="1.6")


def test_card_reads_severity_title_text_facts_and_link() -> None:
    card = card_of(build_sink("teams").render(ALERT))
    header, text, facts = card["body"]
    assert header["style"] == "attention"
    assert header["items"][0]["text"] == "🔴 CRITICAL"
    assert header["items"][1]["inlines"][0]["text"] == ALERT.title
    assert text["type"] == "TextBlock"
    assert "downloaded a script" in text["text"]
    assert text["text"].count("\n\n") == 1  # one line break, as Markdown needs it
    assert facts["facts"][0] == {"title": "Urgency", "value": "82 (Major)"}
    assert len(facts["facts"]) == len(ALERT.facts)
    assert card["actions"] == [
        {"type": "Action.OpenUrl", "title": "Open in Sekoia.io", "url": ALERT.link}
    ]


def test_huge_message_is_cut_with_visible_markers() -> None:
    for fmt in ("workflows", "messagecard"):
        request = build_sink("teams", format=fmt).build_request(HUGE)
        assert len(request.body_bytes()) <= BUDGET
        text = json.dumps(request.json, ensure_ascii=False)
        assert "truncated" in text
        assert "more facts not shown" in text
        assert HUGE.link in text  # the button to the whole alert is kept


def test_each_severity_looks_different_even_without_colour() -> None:
    cards = [card_of(build_sink("teams").render(message)) for message in ONE_PER_SEVERITY]
    assert len({card["body"][0]["style"] for card in cards}) == len(cards)
    looks = set()
    for rendered in service_renderers().render_many("teams", cards):
        assert not rendered.errors
        badge = next(e for e in rendered.elements if "ac-textBlock" in e.classes)
        # What is left of the badge's look once its colour is taken away, and its word.
        uncoloured = re.sub(r"(background-)?color:[^;]*;", "", badge.attrs["style"])
        looks.add((badge.text.split()[-1], uncoloured))
    assert len({word for word, _ in looks}) == len(cards)
    assert len({style for _, style in looks}) == len(cards)


def test_hostile_text_is_inert() -> None:
    card = card_of(build_sink("teams").render(HOSTILE))
    assert "actions" not in card  # a javascript: link never becomes a button
    title = card["body"][0]["items"][1]["inlines"][0]["text"]
    assert "@channel" not in title
    assert "https://evil" not in title
    text = card["body"][1]["text"]
    assert "\\[login\\]" in text  # the brackets of a Markdown link are escaped
    assert "C:\\Windows\\System32" in text  # Windows paths keep single backslashes


# HTML a MessageCard would render, and the angle-bracket autolinks of Markdown, in every field
# an attacker fills.
ANGLE_BAIT = (
    '<a href="//evil.example/login">Reset your SSO password</a>',
    '<img src="//evil.example/pixel.gif">',
    "<smb://evil.example/share>",
    "<ms-word:ofe|u|https://evil.example/a.docx>",
    "</b><script>alert(1)</script>",
)
ANGLED = Message(
    title=" ".join(ANGLE_BAIT),
    text="\n".join(ANGLE_BAIT),
    severity=Severity.HIGH,
    facts=tuple(Fact(name=bait, value=bait) for bait in ANGLE_BAIT),
)


@pytest.mark.parametrize("fmt", ["workflows", "messagecard"])
def test_html_and_angle_autolinks_stay_text(fmt: str) -> None:
    # Stricter than either format: HTML on (a MessageCard renders it), linkify on.
    md = MarkdownIt("commonmark", {"html": True, "linkify": True}).enable("linkify")
    payload = build_sink("teams", format=fmt).render(ANGLED)
    fields = [(p, t) for p, t in walk_strings(payload) if not p.endswith(("$schema", "@context"))]
    readable = " ".join(text for _, text in fields).replace(ZERO_WIDTH_SPACE, "")
    for bait in ANGLE_BAIT[:3]:
        assert bait in readable
    for path, text in fields:
        # No "<" that could open a tag or an autolink, in plain fields as much as in Markdown.
        assert not re.search("<(?!" + ZERO_WIDTH_SPACE + ")", text), (path, text)
        found = {t.type for block in md.parse(text) for t in [block, *(block.children or ())]}
        assert not found & {"link_open", "image", "html_inline", "html_block"}, (path, found)


def test_messagecard_shape() -> None:
    card = build_sink("teams", format="messagecard").render(ALERT)
    assert card["@type"] == "MessageCard"
    assert card["@context"] == "http://schema.org/extensions"
    assert card["summary"] == ALERT.title
    assert card["themeColor"] == "D0021B"
    assert card["title"] == "🔴 " + ALERT.title
    section = card["sections"][0]
    assert section["activityTitle"] == "🔴 CRITICAL"
    assert section["facts"][0] == {"name": "Urgency", "value": "82 (Major)"}
    assert card["potentialAction"] == [
        {
            "@type": "OpenUri",
            "name": "Open in Sekoia.io",
            "targets": [{"os": "default", "uri": ALERT.link}],
        }
    ]


def test_teams_rate_limit_defaults_to_4_per_second() -> None:
    assert build_sink("teams").rate_limit == 4.0
    assert build_sink("teams", rate_limit=1.5).rate_limit == 1.5


async def send(make_sink: Any, loopback: LoopbackServer, reply: Reply, **options: Any) -> Any:
    loopback.reply(reply)
    sink = make_sink("teams", url=f"{loopback.url}/workflows/{SECRET}/run?sig={SECRET}", **options)
    # Through the core's attempt, which redacts secrets a service echoes in its answer.
    return await attempt(sink, ALERT, sink_redactor(sink))


async def test_workflows_request_on_the_wire(loopback: LoopbackServer, make_sink: Any) -> None:
    result = await send(make_sink, loopback, Reply(202, ""))
    assert result.outcome is Outcome.DELIVERED
    request = loopback.requests[0]
    assert request.method == "POST"
    assert request.path == f"/workflows/{SECRET}/run"
    assert request.headers["Content-Type"].startswith("application/json")
    assert card_of(request.json())["type"] == "AdaptiveCard"


# Power Automate answers 202 and an empty body; errors are JSON {"error": {"code", "message"}}.
WORKFLOW_ERROR = '{"error":{"code":"%s","message":"%s"}}'


@pytest.mark.parametrize(
    ("reply", "outcome"),
    [
        (Reply(202, ""), Outcome.DELIVERED),
        (Reply(200, ""), Outcome.DELIVERED),
        (Reply(400, WORKFLOW_ERROR % ("TriggerInputSchemaMismatch", "bad")), Outcome.PERMANENT),
        (Reply(401, WORKFLOW_ERROR % ("DirectApiAuthorizationRequired", "no")), Outcome.PERMANENT),
        (Reply(404, WORKFLOW_ERROR % ("WorkflowNotFound", "gone")), Outcome.PERMANENT),
        (Reply(413, ""), Outcome.PERMANENT),
        (Reply(429, WORKFLOW_ERROR % ("WorkflowRequestsThrottled", "slow")), Outcome.RETRY),
        (Reply(500, ""), Outcome.RETRY),
        (Reply(502, "Bad Gateway"), Outcome.RETRY),
    ],
)
async def test_workflows_answers(
    loopback: LoopbackServer, make_sink: Any, reply: Reply, outcome: Outcome
) -> None:
    assert (await send(make_sink, loopback, reply)).outcome is outcome


async def test_workflows_throttle_honours_retry_after(
    loopback: LoopbackServer, make_sink: Any
) -> None:
    result = await send(make_sink, loopback, Reply(429, "", {"Retry-After": "12"}))
    assert result.outcome is Outcome.RETRY
    assert result.retry_after == 12.0


CONNECTOR_FAILURE = (
    "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error "
    "{code} with ContextId tcid=0,server=msgapi-production-weu-azsc2-4-170,cv=Uz7Fsq1kWEGr.0.."
)


@pytest.mark.parametrize(
    ("reply", "outcome"),
    [
        (Reply(200, "1"), Outcome.DELIVERED),
        (Reply(200, CONNECTOR_FAILURE.format(code=429)), Outcome.RETRY),
        (Reply(200, CONNECTOR_FAILURE.format(code=413)), Outcome.PERMANENT),
        (Reply(200, CONNECTOR_FAILURE.format(code=500)), Outcome.RETRY),
        (Reply(200, CONNECTOR_FAILURE.format(code=400)), Outcome.PERMANENT),
        # A Workflows URL takes a MessageCard too, and answers 202 with nothing.
        (Reply(202, ""), Outcome.DELIVERED),
        # Unexplained: sending again could post the card twice; a dead letter can be replayed.
        (Reply(200, ""), Outcome.PERMANENT),
        (Reply(202, "Accepted"), Outcome.PERMANENT),
        (Reply(204, ""), Outcome.PERMANENT),
        (Reply(200, "<html><title>Sign in</title></html>"), Outcome.PERMANENT),
        (Reply(400, "Summary or Text is required."), Outcome.PERMANENT),
        (Reply(404, ""), Outcome.PERMANENT),
        (Reply(413, ""), Outcome.PERMANENT),
        (Reply(429, "", {"Retry-After": "3"}), Outcome.RETRY),
    ],
)
async def test_connector_answers(
    loopback: LoopbackServer, make_sink: Any, reply: Reply, outcome: Outcome
) -> None:
    result = await send(make_sink, loopback, reply, format="messagecard")
    assert result.outcome is outcome
    assert len(loopback.requests) == 1
    if result.outcome is not Outcome.DELIVERED and 200 <= reply.status < 300:
        assert "connector says" in result.detail


async def test_connector_body_is_a_message_card(loopback: LoopbackServer, make_sink: Any) -> None:
    result = await send(make_sink, loopback, Reply(200, "1"), format="messagecard")
    assert result.outcome is Outcome.DELIVERED
    assert loopback.requests[0].json()["@type"] == "MessageCard"


async def test_secret_never_in_failure_detail(loopback: LoopbackServer, make_sink: Any) -> None:
    echo = f"Invalid request to /workflows/{SECRET}/run?sig={SECRET}"
    result = await send(make_sink, loopback, Reply(400, echo))
    assert result.outcome is Outcome.PERMANENT
    assert SECRET not in result.detail
    assert "Invalid request" in result.detail


def test_render_is_what_is_sent() -> None:
    sink = build_sink("teams")
    message: Message = ALERT
    assert json_bytes(sink.render(message)) == sink.build_request(message).body_bytes()
