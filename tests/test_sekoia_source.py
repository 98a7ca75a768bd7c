"""The ``sekoia`` source: typed events, lenient parsing, and ``updated`` in ``when`` conditions."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
from notirouter.plugins.sekoia.source import (
    AlertCommentEvent,
    AlertEvent,
    CaseEvent,
    ContentProposalEvent,
    SekoiaEvent,
    SekoiaSource,
)
from pydantic import ValidationError

from notirouter.config.loader import load_config_text
from notirouter.runtime import Runtime
from tests.sekoia_fixtures import ALERT_UUID, alert_event, case_event, comment_event

SOURCE = SekoiaSource()


@pytest.mark.parametrize(
    ("payload", "model"),
    [
        (alert_event("created"), AlertEvent),
        (alert_event("updated", updated={"status_name": "Closed"}), AlertEvent),
        (alert_event("deleted"), AlertEvent),
        (comment_event(), AlertCommentEvent),
        (case_event("created"), CaseEvent),
        (case_event("alerts-updated", updated={"added_alerts_uuid": []}), CaseEvent),
        ({"type": "content-proposal", "action": "created", "attributes": {}}, ContentProposalEvent),
        (alert_event("archived"), SekoiaEvent),  # an action without a model: generic
        ({"type": "rule", "action": "deprecated", "attributes": {"x": 1}}, SekoiaEvent),
    ],
)
def test_each_type_and_action_gets_its_model(payload: dict[str, Any], model: type) -> None:
    assert type(SOURCE.parse(payload)) is model


def test_typed_fields() -> None:
    event = SOURCE.parse(alert_event("updated", updated={"dynamic_urgency_value": 80}))
    assert isinstance(event, AlertEvent)
    assert event.attributes.uuid == ALERT_UUID
    assert event.attributes.updated == {"dynamic_urgency_value": 80}
    assert event.metadata.created_at is not None


def test_unexpected_attribute_shapes_fall_back_to_generic_not_to_an_error() -> None:
    event = SOURCE.parse(alert_event(similar="many", updated=["not", "a", "dict"]))
    assert type(event) is SekoiaEvent
    assert event.type == "alert"
    assert event.attribute_data()["similar"] == "many"


def test_envelope_errors_are_still_rejected() -> None:
    with pytest.raises(ValidationError):
        SOURCE.parse({"type": "alert", "attributes": {}})


def test_template_data_is_the_event_as_sent_plus_updated() -> None:
    payload = alert_event("updated", updated={"status_name": "Closed"})
    data = SOURCE.parse(payload).template_data()
    assert data["attributes"] == payload["attributes"]  # no nulls for fields not sent
    assert data["metadata"].keys() == payload["metadata"].keys()
    assert data["updated"] == {"status_name": "Closed"}
    assert SOURCE.parse(alert_event()).template_data()["updated"] == {}


def test_generic_fallback_still_exposes_updated() -> None:
    # One attribute of an unexpected type makes the event generic; ``updated`` must survive it.
    payload = alert_event("updated", similar="150+", updated={"status_name": "Closed"})
    event = SOURCE.parse(payload)
    assert type(event) is SekoiaEvent
    assert event.template_data()["updated"] == {"status_name": "Closed"}
    unknown = {"type": "rule", "action": "changed", "attributes": {"updated": ["not a dict"]}}
    assert SOURCE.parse(unknown).template_data()["updated"] == {}
    assert SOURCE.parse(comment_event()).template_data()["updated"] == {}


def test_extra_attributes_are_kept() -> None:
    event = SOURCE.parse(alert_event(assets_uuids=["a"], brand_new={"k": 1}))
    assert event.template_data()["attributes"]["brand_new"] == {"k": 1}


CONFIG = """
hooks: [{name: s, token: test-token-0123456789abcdef, source: sekoia}]
queue: {path: QUEUE}
sinks: {console: {type: log}}
routes:
  - name: status-changed
    match: {type: alert, action: updated}
    when: "updated.status_name is defined"
    sinks: [console]
    continue: true
  - name: urgency-crossed-70
    match: {type: alert, action: updated}
    when: "updated.dynamic_urgency_value >= 70"
    sinks: [console]
    continue: true
  - name: closed-via-attributes
    match: {type: alert, action: updated}
    when: "attributes.updated.status_name == 'Closed'"
    sinks: [console]
"""


@pytest.mark.parametrize(
    ("updated", "matched"),
    [
        ({"status_name": "Closed"}, ["status-changed", "closed-via-attributes"]),
        ({"dynamic_urgency_value": 85}, ["urgency-crossed-70"]),
        ({"dynamic_urgency_value": 40}, []),
        ({"similar": 12}, []),
    ],
)
@pytest.mark.parametrize("extra", [{}, {"similar": "150+"}], ids=["typed", "generic"])
async def test_when_conditions_see_updated(
    tmp_path: Any, updated: dict[str, Any], matched: list[str], extra: dict[str, Any]
) -> None:
    text = textwrap.dedent(CONFIG).replace("QUEUE", str(tmp_path / "q.db"))
    runtime = Runtime(load_config_text(text, "test.yaml"))
    event = runtime.pipeline.parse("sekoia", alert_event("updated", updated=updated, **extra))
    routed = await runtime.pipeline.route(event, enrich=False)
    assert [route.name for route, _ in routed.messages] == matched
