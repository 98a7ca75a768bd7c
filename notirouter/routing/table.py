"""Routes: which events go where, indexed by (type, action).

The index maps each (type, action) pair to the routes that could match it, in config order, so a
table of hundreds of routes costs a dictionary lookup per event, not a scan. ``when`` conditions
run only on those candidates, after enrichment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from notirouter.api.operations import OPERATIONAL_EVENT_TYPE
from notirouter.api.templating import TemplateRenderError
from notirouter.routing.grouping import Grouping
from notirouter.routing.notify_on import NotifyOn
from notirouter.routing.quiet_hours import WindowRule
from notirouter.routing.throttle import Throttle

ANY = "*"
Renderer = Callable[[Mapping[str, Any]], str]
Condition = Callable[[Mapping[str, Any]], bool]


@dataclass(frozen=True, eq=False)
class Route:
    """A compiled route: matchers, condition and templates ready to run."""

    name: str
    position: int
    types: frozenset[str] | None  # None: any type
    actions: frozenset[str] | None  # None: any action
    enrich: tuple[str, ...]
    sinks: tuple[str, ...]
    continue_: bool = False
    when_source: str | None = None
    when: Condition | None = None
    title: Renderer | None = None
    text: Renderer | None = None
    facts: tuple[tuple[str, Renderer], ...] | None = None
    group: Grouping | None = None  # None: every message is delivered at once
    notify_on: NotifyOn | None = None  # None: every update notifies
    throttle: Throttle | None = None  # None: no limit
    window: WindowRule | None = None  # None: active at all times
    communities: frozenset[str] | None = None  # community uuids; None: any community
    community_source: tuple[str, ...] = ()  # as configured (names or uuids), for the record

    def mismatch(self, event_type: str, action: str) -> str | None:
        """Why this route cannot match (type, action), or ``None`` when it can."""
        if self.types is not None and event_type not in self.types:
            return f"type {event_type!r} not in {sorted(self.types)}"
        if self.actions is not None and action not in self.actions:
            return f"action {action!r} not in {sorted(self.actions)}"
        return None

    def community_mismatch(self, community_uuid: str | None, shown: str | None) -> str | None:
        """Why this route cannot take an event of that community, or ``None`` when it can.

        ``shown`` is the community as ``communities:`` names it (its uuid when unnamed). An
        event without a community matches only a route that accepts any.
        """
        if self.communities is None or (community_uuid or "").lower() in self.communities:
            return None
        wanted = ", ".join(self.community_source)
        if community_uuid is None:
            return f"the event names no community (the route takes {wanted})"
        return f"community {shown!r} not in [{wanted}]"


@dataclass(frozen=True)
class RouteDecision:
    """Whether a candidate route matched an event, and why (for logs and dry runs)."""

    route: Route
    matched: bool
    reason: str
    error: str | None = None  # why ``when`` could not be evaluated, if it could not


class RouteTable:
    """All routes, indexed by (type, action); candidate lists are cached per pair."""

    _CACHE_LIMIT = 4096  # types come from untrusted senders: keep the cache bounded

    def __init__(
        self, routes: Sequence[Route], communities: Mapping[str, str] | None = None
    ) -> None:
        self.routes = tuple(routes)
        # Community uuid -> its configured name (``communities:``), for templates and records.
        self.community_names = {uuid: name for name, uuid in (communities or {}).items()}
        self._index: dict[tuple[str, str], list[Route]] = {}
        for route in self.routes:
            for type_key in sorted(route.types) if route.types is not None else [ANY]:
                for action_key in sorted(route.actions) if route.actions is not None else [ANY]:
                    self._index.setdefault((type_key, action_key), []).append(route)
        self._cache: dict[tuple[str, str], tuple[Route, ...]] = {}

    def candidates(self, event_type: str, action: str) -> tuple[Route, ...]:
        """Routes whose ``match`` accepts (type, action), in config order."""
        key = (event_type, action)
        found = self._cache.get(key)
        if found is not None:
            return found
        merged: dict[int, Route] = {}
        lookups = [(event_type, action), (event_type, ANY), (ANY, action), (ANY, ANY)]
        if event_type == OPERATIONAL_EVENT_TYPE:
            # notirouter's own events go only where a route names their type: a catch-all
            # route to the alert channel would otherwise carry them, and a failing sink's
            # trouble back to itself.
            lookups = lookups[:2]
        for lookup in lookups:
            for route in self._index.get(lookup, ()):
                merged[route.position] = route
        found = tuple(merged[p] for p in sorted(merged))
        if len(self._cache) >= self._CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = found
        return found

    def enrichers_for(self, event_type: str, action: str) -> tuple[str, ...]:
        """The union of enrichers named by the candidate routes, in first-use order."""
        return enrichers_of(self.candidates(event_type, action))


def enrichers_of(routes: Sequence[Route]) -> tuple[str, ...]:
    """The union of enrichers ``routes`` name, in first-use order."""
    names: dict[str, None] = {}
    for route in routes:
        names.update(dict.fromkeys(route.enrich))
    return tuple(names)


def decide(candidates: Sequence[Route], variables: Mapping[str, Any]) -> list[RouteDecision]:
    """Evaluate candidates in order: ``when`` decides, and a match without ``continue`` stops.

    A ``when`` that cannot be evaluated because one of the route's own enrichers failed
    matches (fail open); any other evaluation error means no match.
    """
    decisions: list[RouteDecision] = []
    stopped_by: str | None = None
    failed_enrichers = variables.get("enrichment_errors") or {}
    for route in candidates:
        if stopped_by is not None:
            reason = f"not evaluated: route {stopped_by!r} matched first without continue"
            decisions.append(RouteDecision(route, False, reason))
            continue
        reason = "type and action match"
        if route.when is not None:
            try:
                accepted = route.when(variables)
            except Exception as exc:  # any failure is this route's only, whatever its type
                error = str(exc) if isinstance(exc, TemplateRenderError) else repr(exc)
                failed = [name for name in route.enrich if name in failed_enrichers]
                if not failed:
                    decisions.append(RouteDecision(route, False, f"when failed: {error}", error))
                    continue
                # The condition needs data an enricher could not fetch: fail open. Missing an
                # urgent alert because the API was down is worse than one message too many.
                reason += (
                    f"; when could not be evaluated ({error}) because enricher "
                    f"{', '.join(failed)} failed: sent anyway"
                )
            else:
                if not accepted:
                    decisions.append(
                        RouteDecision(route, False, f"when is false: {route.when_source}")
                    )
                    continue
                reason += f"; when is true: {route.when_source}"
        decisions.append(RouteDecision(route, True, reason))
        if not route.continue_:
            stopped_by = route.name
    return decisions
