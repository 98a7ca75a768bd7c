"""Routing: match on type and action, when conditions, order, continue, the index."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from notirouter.api.templating import Templates
from notirouter.config.loader import load_config
from notirouter.routing.table import Route, RouteTable, decide

CONFIG = """
sinks:
  a: {type: log}
routes:
  - name: created-alerts
    match: {type: alert, action: created}
    sinks: [a]
    continue: true
  - name: urgent
    match: {type: [alert, case], action: "*"}
    when: "attributes.urgency is defined and attributes.urgency >= 70"
    sinks: [a]
  - name: updates
    match: {type: "*", action: [updated, deleted]}
    sinks: [a]
  - name: catch-all
    sinks: [a]
"""


@pytest.fixture
def table(write_config: Callable[..., Path]) -> RouteTable:
    return load_config(write_config(CONFIG), environ={}).routes


def matched(table: RouteTable, type_: str, action: str, **attributes: Any) -> list[str]:
    variables = {"type": type_, "action": action, "attributes": attributes}
    return [d.route.name for d in decide(table.candidates(type_, action), variables) if d.matched]


def test_first_match_wins_unless_continue(table: RouteTable) -> None:
    assert matched(table, "alert", "created") == ["created-alerts", "catch-all"]
    assert matched(table, "alert", "created", urgency=80) == ["created-alerts", "urgent"]


def test_when_condition_decides(table: RouteTable) -> None:
    assert matched(table, "case", "created", urgency=90) == ["urgent"]
    assert matched(table, "case", "created", urgency=10) == ["catch-all"]
    assert matched(table, "case", "created") == ["catch-all"]


def test_lists_and_wildcards(table: RouteTable) -> None:
    assert matched(table, "content-proposal", "updated") == ["updates"]
    assert matched(table, "case", "deleted", urgency=1) == ["updates"]
    assert matched(table, "brand-new-type", "whatever") == ["catch-all"]


def test_candidates_come_from_the_index_in_config_order(table: RouteTable) -> None:
    assert [r.name for r in table.candidates("alert", "created")] == [
        "created-alerts",
        "urgent",
        "catch-all",
    ]
    assert [r.name for r in table.candidates("x", "y")] == ["catch-all"]


def test_failing_condition_does_not_match_and_says_why() -> None:
    templates = Templates()
    route = Route(
        name="r",
        position=0,
        types=None,
        actions=None,
        enrich=(),
        sinks=("a",),
        when_source="alert.urgency.current_value >= 70",
        when=templates.compile_condition("alert.urgency.current_value >= 70"),
    )
    [decision] = decide([route], {"type": "alert"})
    assert not decision.matched
    assert decision.reason.startswith("when failed:")


def test_enrichers_are_the_union_of_the_candidates() -> None:
    def route(
        name: str, position: int, enrich: tuple[str, ...], types: frozenset[str] | None
    ) -> Route:
        return Route(
            name=name, position=position, types=types, actions=None, enrich=enrich, sinks=("a",)
        )

    table = RouteTable(
        [
            route("one", 0, ("sekoia",), frozenset({"alert"})),
            route("two", 1, ("sekoia", "cmdb"), None),
            route("three", 2, ("geo",), frozenset({"case"})),
        ]
    )
    assert table.enrichers_for("alert", "created") == ("sekoia", "cmdb")
    assert table.enrichers_for("case", "created") == ("sekoia", "cmdb", "geo")


def test_a_large_table_indexes_by_type_and_action() -> None:
    routes = [
        Route(
            name=f"r{i}",
            position=i,
            types=frozenset({f"type{i}"}),
            actions=frozenset({"created"}),
            enrich=(),
            sinks=("a",),
        )
        for i in range(5000)
    ]
    table = RouteTable(routes)
    assert [r.name for r in table.candidates("type4321", "created")] == ["r4321"]
    assert table.candidates("type4321", "deleted") == ()


def test_when_fails_open_when_the_routes_enricher_failed() -> None:
    templates = Templates()

    def route(name: str, enrich: tuple[str, ...]) -> Route:
        return Route(
            name=name,
            position=0,
            types=None,
            actions=None,
            enrich=enrich,
            sinks=("a",),
            continue_=True,
            when_source="alert.urgency.current_value >= 70",
            when=templates.compile_condition("alert.urgency.current_value >= 70"),
        )

    variables = {"type": "alert", "enrichment_errors": {"sekoia": "API unavailable"}}
    enriched, plain = decide([route("urgent", ("sekoia",)), route("plain", ())], variables)
    assert enriched.matched
    assert enriched.reason.endswith("because enricher sekoia failed: sent anyway")
    assert not plain.matched  # no enricher of its own failed: an ordinary evaluation error
    [healthy] = decide([route("urgent", ("sekoia",))], {"type": "alert", "enrichment_errors": {}})
    assert not healthy.matched
