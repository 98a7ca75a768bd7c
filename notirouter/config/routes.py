"""Compiling the ``routes:`` section: cross-references, conditions and templates.

Everything that can fail is compiled here, at load, so a bad template is a config error with
its line, never a surprise on the first event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from notirouter.api.templating import TemplateCompileError
from notirouter.config.checker import Checker
from notirouter.config.models import UUID, AppConfig, RouteConfig
from notirouter.routing.grouping import Grouping, GroupingCompileError
from notirouter.routing.notify_on import GateCompileError, NotifyOn
from notirouter.routing.quiet_hours import WindowRule
from notirouter.routing.table import Renderer, Route
from notirouter.routing.throttle import Throttle
from notirouter.routing.time_windows import TimeWindow


def compile_routes(
    checker: Checker, app: AppConfig, windows: Mapping[str, TimeWindow] | None = None
) -> list[Route]:
    """The valid routes, compiled; every problem is reported to ``checker``.

    ``windows``: the valid ``time_windows`` (a window that failed is not reported again as
    unknown where a route names it).
    """
    _check_communities(checker, app)
    routes: list[Route] = []
    names: set[str] = set()
    for i, config in zip(checker.route_positions, app.routes, strict=True):
        path: tuple[str | int, ...] = ("routes", i)
        if config.name in names:
            checker.add((*path, "name"), f"routes: duplicate route name {config.name!r}")
        names.add(config.name)
        for j, sink in enumerate(config.sinks):
            if sink not in app.sinks and "sinks" not in checker.failed_sections:
                checker.add(
                    (*path, "sinks", j),
                    f"routes.{config.name}: unknown sink {sink!r} "
                    f"(defined: {', '.join(sorted(app.sinks)) or 'none'})",
                )
        for j, enricher in enumerate(config.enrich):
            if enricher not in app.enrichers and "enrichers" not in checker.failed_sections:
                checker.add(
                    (*path, "enrich", j),
                    f"routes.{config.name}: unknown enricher {enricher!r} "
                    f"(defined: {', '.join(sorted(app.enrichers)) or 'none'})",
                )
        window = _window_rule(checker, config, path, app, windows or {})
        route = _compile_route(checker, config, i, path)
        communities = _communities(checker, app, config, path)
        # A route whose window or community is in error was reported: the config fails.
        if route is not None and not isinstance(window, bool) and communities is not False:
            route = replace(route, window=window)
            if isinstance(communities, frozenset):
                route = replace(
                    route,
                    communities=communities,
                    community_source=tuple(_values(config.match.community)),
                )
            routes.append(route)
    return routes


def _window_rule(
    checker: Checker,
    config: RouteConfig,
    path: tuple[str | int, ...],
    app: AppConfig,
    windows: Mapping[str, TimeWindow],
) -> WindowRule | bool | None:
    """The route's window rule, ``None`` without one, ``False`` after reporting a problem."""
    label = f"routes.{config.name}"
    if config.active is not None and config.active_outside is not None:
        checker.add((*path, "active_outside"), f"{label}: use active or active_outside, not both")
        return False
    outside = config.active_outside is not None
    name = config.active_outside if outside else config.active
    key = "active_outside" if outside else "active"
    if name is None:
        if config.bypass is not None:
            checker.add((*path, "bypass"), f"{label}.bypass: only with active or active_outside")
            return False
        return None
    window = windows.get(name)
    if window is None:
        if name not in app.time_windows and "time_windows" not in checker.failed_sections:
            checker.add(
                (*path, key),
                f"{label}.{key}: unknown time window {name!r} "
                f"(defined: {', '.join(sorted(app.time_windows)) or 'none'})",
            )
        return False
    bypass = None
    if config.bypass is not None:
        try:
            bypass = checker.templates.compile_condition(config.bypass)
        except TemplateCompileError as exc:
            checker.add((*path, "bypass"), f"{label}.bypass: does not compile: {exc}")
            return False
    return WindowRule(window, outside, config.bypass, bypass)


def _check_communities(checker: Checker, app: AppConfig) -> None:
    """Two names for one community would make its name (``community`` in templates) ambiguous."""
    seen: dict[str, str] = {}
    for name, uuid in app.communities.items():
        if uuid in seen:
            checker.add(
                ("communities", name),
                f"communities.{name}: same uuid as community {seen[uuid]!r}",
            )
        seen.setdefault(uuid, name)


def _communities(
    checker: Checker, app: AppConfig, config: RouteConfig, path: tuple[str | int, ...]
) -> frozenset[str] | bool | None:
    """The uuids ``match.community`` accepts (``None``: any; ``False``: it named an unknown)."""
    values = _values(config.match.community)
    if "*" in values:
        return None
    uuids: set[str] = set()
    ok = True
    for j, value in enumerate(values):
        if value in app.communities:
            uuids.add(app.communities[value])
        elif UUID.fullmatch(value.strip()):
            uuids.add(value.strip().lower())  # a community without a name
        elif "communities" in checker.failed_sections:
            ok = False  # already reported: the names it would define are unknown
        else:
            ok = False
            where: tuple[str | int, ...] = (*path, "match", "community")
            if isinstance(config.match.community, list):
                where = (*where, j)
            defined = ", ".join(sorted(app.communities)) or "none"
            checker.add(
                where,
                f"routes.{config.name}.match.community: unknown community {value!r} "
                f"(a name from communities: {defined}; or a uuid)",
            )
    return frozenset(uuids) if ok else False


def _values(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _compile_route(
    checker: Checker, config: RouteConfig, index: int, path: tuple[str | int, ...]
) -> Route | None:
    ok = True

    def template(value: str | None, *where: str | int) -> Renderer | None:
        nonlocal ok
        if value is None:
            return None
        try:
            return checker.templates.compile_template(value)
        except TemplateCompileError as exc:
            ok = False
            checker.add((*path, *where), f"routes.{config.name}.{where[0]}: {exc}")
            return None

    when = None
    if config.when is not None:
        try:
            when = checker.templates.compile_condition(config.when)
        except TemplateCompileError as exc:
            ok = False
            checker.add((*path, "when"), f"routes.{config.name}.when: does not compile: {exc}")
    title = template(config.title, "title")
    text = template(config.text, "text")
    facts: list[tuple[str, Renderer]] = []
    for name, value in (config.facts or {}).items():
        compiled = template(value, "facts", name)
        if compiled is not None:
            facts.append((name, compiled))
    group = None
    if config.group is not None:
        try:
            group = Grouping.compile(
                checker.templates,
                config.group.by,
                wait=config.group.wait,
                interval=config.group.interval,
                max_items=config.group.max_items,
            )
        except GroupingCompileError as exc:
            ok = False
            checker.add(
                (*path, "group", "by", exc.index),
                f"routes.{config.name}.group.by: does not compile: {exc}",
            )
    notify_on = throttle = None
    if config.notify_on is not None:
        try:
            notify_on = NotifyOn.compile(
                checker.templates,
                config.notify_on.key,
                config.notify_on.changes,
                retention=config.notify_on.retention,
            )
        except GateCompileError as exc:
            ok = False
            where = ".".join(str(part) for part in exc.where)
            checker.add(
                (*path, "notify_on", *exc.where),
                f"routes.{config.name}.notify_on.{where}: does not compile: {exc}",
            )
    if config.throttle is not None:
        try:
            throttle = Throttle.compile(
                checker.templates,
                config.throttle.key,
                max=config.throttle.max,
                per=config.throttle.per,
            )
        except GateCompileError as exc:
            ok = False
            checker.add(
                (*path, "throttle", *exc.where),
                f"routes.{config.name}.throttle.key: does not compile: {exc}",
            )
    if not ok:
        return None
    return Route(
        name=config.name,
        position=index,
        types=_matcher(config.match.type),
        actions=_matcher(config.match.action),
        enrich=tuple(config.enrich),
        sinks=tuple(config.sinks),
        continue_=config.continue_,
        when_source=config.when,
        when=when,
        title=title,
        text=text,
        facts=tuple(facts) if config.facts is not None else None,
        group=group,
        notify_on=notify_on,
        throttle=throttle,
    )


def _matcher(value: str | list[str]) -> frozenset[str] | None:
    values = [value] if isinstance(value, str) else value
    if "*" in values:
        return None
    return frozenset(values)
