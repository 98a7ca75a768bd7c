"""An enricher's variables join the template context but never replace the core's state."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from notirouter import Enricher, EnricherOptions, EnrichmentError, Event, hookimpl
from notirouter.api.manager import make_plugin_manager
from notirouter.config.loader import load_config
from notirouter.runtime import Runtime
from tests.sekoia_fixtures import alert_event


class GreedyEnricher(Enricher[EnricherOptions]):
    """A third-party enricher that returns names the core owns, beside one of its own."""

    type_name = "greedy"
    Options = EnricherOptions

    async def enrich(self, event: Event) -> Mapping[str, Any]:
        return {
            "event": {"type": "forged"},
            "enrichment_errors": {},
            "type": "case",
            "asset": {"owner": "it-ops"},
        }


class FailingGreedyEnricher(GreedyEnricher):
    type_name = "failing-greedy"

    async def enrich(self, event: Event) -> Mapping[str, Any]:
        raise EnrichmentError("down", partial={"enrichment_errors": {}, "asset": {"owner": "x"}})


class GreedyPlugin:
    @hookimpl
    def register_enrichers(self, register: Callable[[type[Enricher[Any]]], None]) -> None:
        register(GreedyEnricher)
        register(FailingGreedyEnricher)


TITLE = "{{ event.type }} {{ type }} {{ asset.owner }} {{ enrichment_errors | length }}"


def pipeline_for(write_config: Callable[..., Path], enricher_type: str) -> Any:
    path = write_config(
        f"""
enrichers: {{cmdb: {{type: {enricher_type}}}}}
sinks: {{a: {{type: log}}}}
routes:
  - name: r
    enrich: [cmdb]
    sinks: [a]
    title: "{TITLE}"
"""
    )

    def factory(blocked: Any) -> Any:
        return make_plugin_manager(blocked=blocked, extra_plugins=[("greedy", GreedyPlugin())])

    return Runtime(load_config(path, environ={}, manager_factory=factory)).pipeline


async def test_an_enricher_cannot_overwrite_the_event_or_the_errors(
    write_config: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    pipeline = pipeline_for(write_config, "greedy")
    with caplog.at_level(logging.WARNING, logger="notirouter.pipeline"):
        routed = await pipeline.route(pipeline.parse("sekoia", alert_event()))
    [(_, message)] = routed.messages
    assert message.title == "alert alert it-ops 0"
    assert routed.variables["enrichment"] == {"asset": {"owner": "it-ops"}}
    assert "enricher cmdb returned variables the core owns (enrichment_errors, event, type)" in (
        caplog.text
    )


async def test_a_failed_enrichers_partial_cannot_hide_its_failure(
    write_config: Callable[..., Path],
) -> None:
    pipeline = pipeline_for(write_config, "failing-greedy")
    routed = await pipeline.route(pipeline.parse("sekoia", alert_event()))
    assert routed.enrichment_errors == {"cmdb": "down"}
    [(_, message)] = routed.messages
    assert message.title == "alert alert x 1"
