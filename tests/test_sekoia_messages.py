"""Default messages for Sekoia.io events, through the registered ``format_message`` hook."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from notirouter.api.events import Event
from notirouter.api.manager import collect_types, make_plugin_manager
from notirouter.api.message import Message, Severity
from notirouter.routing.context import EventContext
from tests.sekoia_fixtures import (
    ALERT,
    ALERT_SHORT_ID,
    ALERT_UUID,
    CASE,
    CASE_UUID,
    COMMENT,
    alert_event,
    case_event,
    comment_event,
)

LINKS = {
    "app_url": "https://app.sekoia.io",
    "alert_url": f"https://app.sekoia.io/operations/alerts/{ALERT_SHORT_ID}",
    "case_url": "https://app.sekoia.io/operations/cases/CAmDUb2Anct1e",
}


def parse(payload: dict[str, Any]) -> Event:
    return collect_types(make_plugin_manager()).sources["sekoia"]().parse(payload)


def format_message(
    payload: dict[str, Any], enrichment: dict[str, Any] | None = None, errors: Any = None
) -> Message:
    """Format as the pipeline does: base variables, enrichment merged at top level."""
    event = parse(payload)
    variables = EventContext.of(event).variables()
    variables.update(enrichment or {})
    variables["enrichment"].update(enrichment or {})
    variables["enrichment_errors"].update(errors or {})
    message: Message | None = make_plugin_manager().hook.format_message(
        event=event, variables=variables
    )
    assert message is not None
    return message


def facts(message: Message) -> dict[str, str]:
    return {fact.name: fact.value for fact in message.facts}


def test_alert_created_shows_everything_an_analyst_needs() -> None:
    message = format_message(alert_event(), {"alert": ALERT, "sekoia": LINKS})
    assert message.title == "New alert: Suspicious PowerShell download"
    assert message.text.splitlines()[0] == "Urgency 60 (Major), status Pending."
    assert "known malicious host" in message.text
    assert "{" not in message.text  # no template or markup left in the text
    assert message.severity is Severity.HIGH  # from 60, not from the "Major" label
    assert message.link == LINKS["alert_url"]
    assert message.thread_key == ALERT_UUID
    assert facts(message) == {
        "Urgency": "60 (Major)",
        "Status": "Pending",
        "Rule": "PowerShell web download",
        "Entity": "Paris HQ",
        "Alert type": "malicious-code / malware",
        "Source → target": "1.2.3.4 → 5.6.7.8",
        "First seen": "2024-12-15T12:29:08Z",
        "Last seen": "2024-12-15T13:01:00Z",
        "Occurrences": "3",
        "Alert": ALERT_SHORT_ID,
    }


@pytest.mark.parametrize(
    ("urgency", "severity"),
    [(0, Severity.LOW), (30, Severity.MEDIUM), (74, Severity.HIGH), (75, Severity.CRITICAL)],
)
def test_severity_follows_the_urgency_value(urgency: int, severity: Severity) -> None:
    alert = copy.deepcopy(ALERT)
    alert["urgency"] = {"current_value": urgency, "display": "Low"}
    assert format_message(alert_event(), {"alert": alert}).severity is severity


def test_degraded_alert_keeps_the_link_and_says_details_are_unavailable() -> None:
    rich = alert_event(status_name="Ongoing", urgency_current_value=85, rule_name="Mimikatz")
    message = format_message(
        rich,
        {"sekoia": LINKS},
        {"sekoia": "Sekoia.io API unavailable after 4 attempts: HTTP 500"},
    )
    assert message.title == f"New alert: {ALERT_SHORT_ID}"
    assert message.link == LINKS["alert_url"]
    assert (
        "Details unavailable: Sekoia.io API unavailable after 4 attempts: HTTP 500" in message.text
    )
    assert message.severity is Severity.CRITICAL
    assert facts(message)["Status"] == "Ongoing"
    assert facts(message)["Rule"] == "Mimikatz"


def test_alert_without_enrichment_says_so() -> None:
    message = format_message(alert_event())
    assert "Details unavailable" in message.text
    assert message.severity is Severity.MEDIUM  # unknown urgency: neither hidden nor paging
    assert message.link is None  # the region (app host) is only known to the enricher


def test_alert_updated_says_what_changed() -> None:
    alert = copy.deepcopy(ALERT)
    alert["status"]["name"] = "Acknowledged"
    alert["urgency"] = {"current_value": 80, "display": "Urgent"}
    updated = {
        "status": "8f206505-af6d-433e-93f4-775d46dc7d0f",
        "status_name": "Acknowledged",
        "dynamic_urgency_value": 80,
    }
    message = format_message(
        alert_event("updated", updated=updated),
        {"alert": alert, "previous_alert": ALERT, "sekoia": LINKS},
    )
    assert message.title == "Alert updated: Suspicious PowerShell download"
    changed = "status Pending → Acknowledged; urgency 60 → 80 (Urgent)"
    assert message.text.splitlines()[0] == f"Changed: {changed}."
    assert facts(message)["Changed"] == changed
    assert message.severity is Severity.CRITICAL
    assert message.thread_key == ALERT_UUID


def test_alert_updated_without_a_previous_copy() -> None:
    event = alert_event("updated", updated={"status_name": "Closed", "similar": 150})
    message = format_message(event)
    assert facts(message)["Changed"] == "status → Closed; occurrences → 150"


def test_alert_deleted() -> None:
    message = format_message(alert_event("deleted"), {"sekoia": LINKS})
    assert message.title == f"Alert deleted: {ALERT_SHORT_ID}"
    assert message.severity is Severity.INFO
    assert message.link is None
    assert "Details unavailable" not in message.text


def test_comment_shows_author_and_text_and_threads_with_the_alert() -> None:
    message = format_message(comment_event(), {"alert": ALERT, "comment": COMMENT, "sekoia": LINKS})
    assert message.title == "New comment on alert: Suspicious PowerShell download"
    assert message.text == "Host isolated, investigating."
    assert facts(message)["Author"] == "Alice Martin"
    assert message.thread_key == ALERT_UUID
    assert message.link == LINKS["alert_url"]


def test_comment_without_enrichment_uses_the_webhook() -> None:
    message = format_message(comment_event())
    assert message.text.startswith("Host isolated, investigating.\nDetails unavailable")
    assert facts(message)["Author"] == "user c110d686-0b45-4ae7-b917-f15486d0f8c7"
    assert message.thread_key == ALERT_UUID


def test_case_created() -> None:
    message = format_message(case_event(), {"case": CASE, "sekoia": LINKS})
    assert message.title == "New case: Ransomware precursor on Paris HQ"
    assert message.severity is Severity.HIGH
    assert message.link == LINKS["case_url"]
    assert message.thread_key == CASE_UUID
    assert facts(message)["Alerts"] == "3"
    assert facts(message)["Created"] == "2024-10-25T18:32:06Z"


def test_case_updated_and_alerts_added() -> None:
    updated = format_message(case_event("updated", updated={"tags": ["apt"], "description": "x"}))
    assert facts(updated)["Changed"] == "tags → apt; description changed"
    added = format_message(
        case_event(
            "alerts-updated",
            updated={"added_alerts_uuid": [ALERT_UUID, CASE_UUID], "deleted_alerts_uuid": []},
        ),
        {"case": CASE, "sekoia": LINKS},
    )
    assert added.title == "Case alerts updated: Ransomware precursor on Paris HQ"
    assert added.text == "2 alerts added."
    assert facts(added)["Added alerts"] == f"{ALERT_UUID}, {CASE_UUID}"
    assert added.thread_key == CASE_UUID


def test_case_timestamps_without_timezone_are_utc() -> None:
    message = format_message(case_event())
    assert facts(message)["Created"] == "2025-02-06T15:05:44Z"


def test_content_proposal() -> None:
    stix = f"report--{CASE_UUID}"
    payload = {
        "type": "content-proposal",
        "action": "created",
        "attributes": {"name": "APT28", "id": stix},
    }
    links = {
        "app_url": "https://app.sekoia.io",
        "object_url": f"https://app.sekoia.io/intelligence/objects/{stix}",
    }
    message = format_message(payload, {"sekoia": links})
    assert message.title == "Report available: APT28"
    assert message.link == links["object_url"]
    assert facts(message)["id"] == stix


def test_unknown_type_shows_raw_attributes() -> None:
    payload = {
        "type": "intake",
        "action": "no-events",
        "attributes": {"uuid": ALERT_UUID, "intake": {"name": "Firewall", "silent_for": 3600}},
    }
    message = format_message(payload)
    assert message.title == "Sekoia.io intake no-events"
    assert facts(message)["intake.name"] == "Firewall"
    assert facts(message)["intake.silent_for"] == "3600"
    assert message.thread_key == ALERT_UUID


def test_hostile_text_stays_plain_text_and_crafted_ids_stay_out_of_thread_keys() -> None:
    alert = copy.deepcopy(ALERT)
    alert["title"] = "<!channel> [click](https://evil.example) <b>x</b>"
    message = format_message(alert_event(uuid="a\r\nBcc: x@evil.example"), {"alert": alert})
    # The formatter does not escape (sinks do) nor add markup; it passes text through as data.
    assert message.title == "New alert: <!channel> [click](https://evil.example) <b>x</b>"
    assert message.thread_key == ALERT_UUID  # the API's uuid, not the crafted one


def test_other_sources_are_left_to_the_core() -> None:
    event = Event(type="alert", action="created")
    variables = EventContext.of(event).variables()
    assert make_plugin_manager().hook.format_message(event=event, variables=variables) is None


DETAILS = "First paragraph:\r\n  line one\r\nline two   \n\n\n\nSecond paragraph\tends here."
KEPT = "First paragraph:\n  line one\nline two\n\nSecond paragraph\tends here."


def test_alert_details_keep_their_paragraphs_and_line_breaks() -> None:
    alert = copy.deepcopy(ALERT)
    alert["details"] = DETAILS
    message = format_message(alert_event(), {"alert": alert, "sekoia": LINKS})
    assert KEPT in message.text


def test_comment_and_case_description_keep_their_line_breaks() -> None:
    comment = {**COMMENT, "content": DETAILS}
    message = format_message(comment_event(), {"alert": ALERT, "comment": comment})
    assert message.text == KEPT
    case = {**CASE, "description": DETAILS}
    assert KEPT in format_message(case_event(), {"case": case}).text


def test_long_details_and_comments_are_left_whole_for_the_sinks_to_cut() -> None:
    # Each sink cuts at its own service's limit; the formatter must not cut first.
    long_text = ("word " * 2_000).strip()  # 9,999 characters
    alert = copy.deepcopy(ALERT)
    alert["details"] = long_text
    assert long_text in format_message(alert_event(), {"alert": alert}).text
    comment = {**COMMENT, "content": long_text}
    assert format_message(comment_event(), {"alert": ALERT, "comment": comment}).text == long_text


def test_a_cut_one_line_value_says_so() -> None:
    alert = copy.deepcopy(ALERT)
    alert["title"] = "x" * 1_000
    title = format_message(alert_event(), {"alert": alert}).title
    assert title.endswith("… [truncated]")
