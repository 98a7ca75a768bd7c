"""From an event to messages: match routes, enrich once, decide, format.

This is the part shared by the serving workers, ``notirouter route`` (dry run) and
``notirouter send``: all three see exactly the same decisions and messages.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pluggy

from notirouter.api.enricher import Enricher, EnrichmentError
from notirouter.api.escape import reveal_invisible
from notirouter.api.events import Event
from notirouter.api.message import Fact, Message
from notirouter.api.source import Source
from notirouter.ingest.payload import TooDeep, clean_data, clean_text
from notirouter.redaction import Redactor, expand_secrets, secret_values
from notirouter.routing.context import EventContext
from notirouter.routing.generic_message import generic_message
from notirouter.routing.grouping import group_facts
from notirouter.routing.table import (
    Renderer,
    Route,
    RouteDecision,
    RouteTable,
    decide,
    enrichers_of,
)
from notirouter.throttled_log import ThrottledLog

log = logging.getLogger("notirouter.pipeline")


class UnknownSourceError(Exception):
    """An event was stored for a source that is no longer installed or configured."""


@dataclass
class Routed:
    """The outcome of routing one event."""

    event: Event
    variables: dict[str, Any]
    decisions: list[RouteDecision]
    messages: list[tuple[Route, Message]] = field(default_factory=list)
    community: str | None = None
    """The event's community as configured (its name, else its uuid; ``None``: none)."""
    community_uuid: str | None = None
    notes: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Route name -> decision key -> what storm control decided for that route (``group``,
    ``storm``, ``community``...), stored with the event (routing/record.py) and shown by
    ``trace`` and the dry run whatever the key."""
    group_keys: dict[str, str] = field(default_factory=dict)
    """Route name -> the group its message joins (grouped routes that matched)."""
    change_key: str | None = None
    """The outside change the event reports, as its enrichers name it (reconciliation)."""

    @property
    def enrichment_errors(self) -> dict[str, str]:
        """Enricher name -> why it failed, for enrichers that failed."""
        errors: dict[str, str] = self.variables["enrichment_errors"]
        return errors


class Pipeline:
    """Routes, enriches and formats events; holds nothing per event between calls."""

    def __init__(
        self,
        *,
        manager: pluggy.PluginManager,
        sources: Mapping[str, Source],
        enrichers: Mapping[str, Enricher[Any]],
        routes: RouteTable,
        storm_settings: Mapping[str, str] | None = None,
    ) -> None:
        self.manager = manager
        # Sink name -> what storm mode does for it (README "Storm mode"), for the record.
        self.storm_settings = dict(storm_settings or {})
        self.sources = sources
        self.enrichers = enrichers
        self.routes = routes
        self._failures = ThrottledLog(log)
        # An API may echo the credential it was sent in an error message; the reason goes into
        # notification text, the queue and logs, so each enricher's secrets are taken out.
        self._redact = {
            name: Redactor(expand_secrets(secret_values(enricher.options)))
            for name, enricher in enrichers.items()
        }

    def parse(self, source: str, payload: dict[str, Any]) -> Event:
        """Validate a payload with the named source (raises pydantic's ValidationError)."""
        parser = self.sources.get(source)
        if parser is None:
            raise UnknownSourceError(f"source {source!r} is not installed")
        return parser.parse(payload)

    async def route(self, event: Event, *, enrich: bool = True) -> Routed:
        """Match, enrich (once, with the union of the candidates' enrichers), decide, format."""
        context = EventContext.of(event, self.routes.community_names)
        # Like type and action, the community is known before enrichment: a tenant's route
        # (and its enricher, with that tenant's API key) never sees another tenant's events.
        candidates = tuple(
            route
            for route in self.routes.candidates(event.type, event.action)
            if route.community_mismatch(context.community_uuid, context.community) is None
        )
        if candidates and enrich:
            await self._enrich(event, enrichers_of(candidates), context)
        variables = context.variables()
        routed = Routed(
            event,
            variables,
            decide(candidates, variables),
            community=context.community,
            community_uuid=context.community_uuid,
        )
        if candidates and enrich:
            routed.change_key = self._change_key(event, variables)
        for decision in routed.decisions:
            if decision.error is not None:
                self._failures.log(
                    logging.WARNING,
                    f"when:{decision.route.name}",
                    "route %s: when could not be evaluated (%s); the route does not match",
                    decision.route.name,
                    decision.error,
                )
            if decision.matched:
                routed.messages.append(
                    (decision.route, self.format(event, variables, decision.route))
                )
                self._note(routed, decision.route)
        return routed

    def _note(self, routed: Routed, route: Route) -> None:
        """The decisions storm control takes for a matched route, known at routing time."""
        notes = routed.notes.setdefault(route.name, {})
        if route.group is not None:
            key = route.group.key(routed.variables)
            routed.group_keys[route.name] = key
            notes["group"] = {
                "key": {fact.name: fact.value for fact in group_facts(key)},
                "wait": route.group.wait,
                "interval": route.group.interval,
                "max_items": route.group.max_items,
            }
        if route.communities is not None:
            notes["community"] = {
                "event": routed.community,
                "accepts": list(route.community_source),
            }
        storm = {
            sink: self.storm_settings[sink] for sink in route.sinks if sink in self.storm_settings
        }
        if storm:
            notes["storm"] = storm

    def _change_key(self, event: Event, variables: Mapping[str, Any]) -> str | None:
        for name in self.routes.enrichers_for(event.type, event.action):
            enricher = self.enrichers.get(name)
            if enricher is None:
                continue
            try:
                key = enricher.change_key(event, variables)
            except Exception:
                # Without a key the event is notified: at worst twice, never lost.
                log.exception("enricher %s: change_key failed", name)
                continue
            if key is not None:
                return key
        return None

    async def _enrich(self, event: Event, names: tuple[str, ...], context: EventContext) -> None:
        chosen = [(name, self.enrichers[name]) for name in names if name in self.enrichers]
        results = await asyncio.gather(
            *(enricher.enrich(event) for _, enricher in chosen), return_exceptions=True
        )
        for (name, _), result in zip(chosen, results, strict=True):
            if not isinstance(result, BaseException):
                try:
                    result = clean_data(dict(result))  # the door's rules hold for API data too
                except TooDeep as exc:
                    result = EnrichmentError(f"the enrichment result is {exc}")
                except (TypeError, ValueError):
                    result = EnrichmentError("the enricher returned something other than a mapping")
            if isinstance(result, EnrichmentError):
                reason = clean_text(self._redact[name](str(result)))
                result = EnrichmentError(reason, partial=result.partial, reported=result.reported)
                context.fail(name, reason, _clean_partial(result.partial))
                if result.reported:
                    log.debug("enricher %s failed for a %s event: %s", name, event.type, result)
                else:
                    self._failures.log(
                        logging.WARNING, name, "enricher %s failed: %s", name, result
                    )
            elif isinstance(result, BaseException):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                context.fail(name, f"unexpected {type(result).__name__}", {})
                log.error("enricher %s crashed", name, exc_info=result)
            else:
                context.add(name, result)
            if name in context.refused:
                self._failures.log(
                    logging.WARNING,
                    f"reserved:{name}",
                    "enricher %s returned variables the core owns (%s); they were left out",
                    name,
                    ", ".join(context.refused[name]),
                )

    def format(self, event: Event, variables: Mapping[str, Any], route: Route) -> Message:
        """The formatter hook's message (or the generic one), with the route's overrides."""
        message: Message | None
        try:
            message = self.manager.hook.format_message(event=event, variables=variables)
        except Exception as exc:
            # A formatter that breaks on one event's data must not cost the event its routes.
            self._failures.log(
                logging.WARNING,
                f"format:{event.type}",
                "the formatter failed for a %s event (%s: %s); using the generic message",
                event.type,
                type(exc).__name__,
                exc,
                exc_info=exc,
            )
            message = None
        if message is None:
            message = generic_message(event, variables)
        update: dict[str, Any] = {
            "route": route.name,
            "event": variables["event"],
            "enrichment": variables["enrichment"],
        }
        if route.title or route.text or route.facts is not None:
            context = {**variables, "message": message.summary()}
            render = self._render
            if route.title is not None:
                update["title"] = render(route, "title", route.title, context, message.title)
            if route.text is not None:
                update["text"] = render(route, "text", route.text, context, message.text)
            if route.facts is not None:
                update["facts"] = tuple(
                    Fact(name=name, value=render(route, f"facts.{name}", field, context, ""))
                    for name, field in route.facts
                )
        return reveal_message(message.model_copy(update=update))

    def _render(
        self,
        route: Route,
        field_name: str,
        render: Renderer,
        context: Mapping[str, Any],
        fallback: str,
    ) -> str:
        """One route template; on any failure, the default text (the other fields and routes
        are unaffected), with one warning per route field and minute."""
        try:
            return render(context)
        except Exception as exc:
            self._failures.log(
                logging.WARNING,
                f"template:{route.name}:{field_name}",
                "route %s: %s template failed (%s); using the default",
                route.name,
                field_name,
                exc,
            )
            return fallback


def reveal_message(message: Message) -> Message:
    """The message with every bidi control and invisible character shown (``⟨U+202E⟩``).

    Done once here, for every formatter and every route template, so that no sink (a
    third-party one included), subject line or log line can display a spoofed value.
    """
    return message.model_copy(
        update={
            "title": reveal_invisible(message.title),
            "text": reveal_invisible(message.text),
            "link_label": reveal_invisible(message.link_label),
            "facts": tuple(
                Fact(name=reveal_invisible(fact.name), value=reveal_invisible(fact.value))
                for fact in message.facts
            ),
        }
    )


def _clean_partial(partial: Mapping[str, Any]) -> dict[str, Any]:
    try:
        cleaned: dict[str, Any] = clean_data(dict(partial))
    except TooDeep:
        return {}
    return cleaned
