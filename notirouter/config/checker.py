"""The config checker: validates section by section and reports each problem at its place.

One mistake must not hide the others, so every section (and every route) is validated on its
own, sections that fail keep their defaults, and checks that depend on a failed section are
skipped rather than reported as consequences of the first error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from notirouter.api.enricher import EnricherOptions
from notirouter.api.interaction import ActionsOptions, AlertWriter
from notirouter.api.manager import PluginTypes
from notirouter.api.sink import SinkOptions, attempt_bound
from notirouter.api.templating import Templates
from notirouter.config.errors import ConfigProblem
from notirouter.config.located_yaml import LocatedDocument
from notirouter.config.models import AppConfig, MatchConfig, RouteConfig

OptionsT = TypeVar("OptionsT", bound=BaseModel)


class Checker:
    """Collects the problems of one located document, each at its file, line and column."""

    def __init__(self, document: LocatedDocument) -> None:
        self.document = document
        self.problems: list[ConfigProblem] = []
        self.failed_sections: set[str] = set()
        self.route_positions: list[int] = []
        self.templates = Templates()

    def add(self, path: tuple[str | int, ...], message: str, *, key: bool = False) -> None:
        """Report ``message`` at ``path`` (at its key rather than its value with ``key``)."""
        self.problems.append(ConfigProblem(self.document.position(path, key=key), message))

    def validate_sections(self, data: dict[str, Any]) -> AppConfig:
        """Validate each section (and each route) on its own, so one mistake hides nothing.

        Sections that fail keep their defaults, and cross-reference checks that depend on
        them are skipped rather than reported as consequences of the first error.
        """
        sections: dict[str, Any] = {}
        fields = {field.alias or name: name for name, field in AppConfig.model_fields.items()}
        for key, raw in data.items():
            name = fields.get(key)
            if name is None and key.startswith("x-"):
                continue  # extension keys hold YAML anchors for reuse ("x-defaults: &d")
            if name is None:
                self.add((key,), f"config: unknown key {key!r}", key=True)
                continue
            if name == "routes" and isinstance(raw, list):
                routes = [self.validate_route(item, i) for i, item in enumerate(raw)]
                sections[name] = [route for route in routes if route is not None]
                self.route_positions = [i for i, route in enumerate(routes) if route is not None]
                continue
            annotation = AppConfig.model_fields[name].annotation
            assert annotation is not None
            value = self.validate(TypeAdapter(annotation), raw, (key,))
            if value is not None:
                sections[name] = value
            else:
                self.failed_sections.add(name)
        return AppConfig.model_construct(**sections)

    def validate_route(self, raw: Any, index: int) -> RouteConfig | None:
        """One route; an error in its ``match`` does not hide the route's other errors.

        ``match`` is validated on its own, and the rest of the route without it, so the
        route's sinks, enrichers, ``when`` and templates are still checked. Such a route keeps
        the default ``match`` only to be checked: its error already fails the config.
        """
        path: tuple[str | int, ...] = ("routes", index)
        if not isinstance(raw, dict) or "match" not in raw:
            route: RouteConfig | None = self.validate(RouteConfig, raw, path)
            return route
        match = self.validate(MatchConfig, raw["match"], (*path, "match"))
        rest = {key: value for key, value in raw.items() if key != "match"}
        route = self.validate(RouteConfig, rest, path)
        if route is None or match is None:
            return route
        return route.model_copy(update={"match": match})

    def validate(self, model: Any, data: Any, base: tuple[str | int, ...]) -> Any:
        """``model`` (a pydantic model or TypeAdapter) applied to ``data`` found at ``base``;
        ``None`` after reporting every error at its place."""
        validate = model.validate_python if isinstance(model, TypeAdapter) else model.model_validate
        try:
            return validate(data)
        except ValidationError as exc:
            seen: set[tuple[str | int, ...]] = set()
            for error in exc.errors(include_input=False, include_url=False):
                self._report(error, data, base, seen)
            return None

    def _report(
        self,
        error: Any,
        data: Any,
        base: tuple[str | int, ...],
        seen: set[tuple[str | int, ...]],
    ) -> None:
        path, node = list(base), data
        loc = list(error["loc"])
        for i, part in enumerate(loc):
            last = i == len(loc) - 1
            if (
                isinstance(node, dict)
                and part in node
                and not (last and error["type"] == "missing")
            ) or (isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)):
                node = node[part]
                path.append(part)
            elif part == "[key]":
                break
        where = tuple(path)
        if where in self.document.unset_paths or where in seen:
            return  # already reported as an unset variable, or a second union branch
        seen.add(where)
        label = ".".join(str(p) for p in where) or "config"
        kind, message = error["type"], error["msg"]
        if kind == "extra_forbidden":
            parent = ".".join(str(p) for p in where[:-1]) or "config"
            self.add(where, f"{parent}: unknown key {where[-1]!r}", key=True)
        elif kind == "missing":
            self.add(where, f"{label}: missing required key {loc[-1]!r}")
        elif loc and loc[-1] == "[key]":
            self.add(where, f"{label}: invalid name: {message}", key=True)
        else:
            self.add(where, f"{label}: {message}")

    def plugin_options(
        self,
        section: str,
        entries: dict[str, dict[str, Any]],
        known: Mapping[str, type[Any]],
        base_options: type[OptionsT],
    ) -> dict[str, OptionsT]:
        """Each sink's or enricher's options, validated by its type's own ``Options`` model."""
        validated: dict[str, OptionsT] = {}
        kind = section[:-1]
        for name, raw in entries.items():
            path: tuple[str | int, ...] = (section, name)
            if not isinstance(raw, dict):
                self.add(path, f"{section}.{name}: expected a mapping with a 'type' key")
                continue
            type_name = raw.get("type")
            if not isinstance(type_name, str):
                self.add(path, f"{section}.{name}: missing required key 'type'")
                continue
            plugin_class = known.get(type_name)
            if plugin_class is None:
                installed = ", ".join(sorted(known)) or "none"
                self.add(
                    (*path, "type"),
                    f"{section}.{name}: unknown {kind} type {type_name!r} (installed: {installed})",
                )
                continue
            options_model = getattr(plugin_class, "Options", base_options)
            options = self.validate(options_model, raw, path)
            if options is not None:
                validated[name] = options
        return validated

    def check_hooks(self, app: AppConfig, types: PluginTypes) -> None:
        """Hook names and tokens are unique; each hook's source is installed."""
        names: dict[str, int] = {}
        tokens: dict[str, str] = {}
        for i, hook in enumerate(app.hooks):
            if hook.name in names:
                self.add(("hooks", i, "name"), f"hooks: duplicate hook name {hook.name!r}")
            names.setdefault(hook.name, i)
            token = hook.token.get_secret_value()
            if token in tokens:
                self.add(
                    ("hooks", i, "token"),
                    f"hooks.{hook.name}: same token as hook {tokens[token]!r}",
                )
            tokens.setdefault(token, hook.name)
            if hook.source not in types.sources:
                installed = ", ".join(sorted(types.sources)) or "none"
                self.add(
                    ("hooks", i, "source"),
                    f"hooks.{hook.name}: unknown source {hook.source!r} (installed: {installed})",
                )

    def check_actions(
        self,
        sinks: Mapping[str, SinkOptions],
        enrichers: Mapping[str, EnricherOptions],
        types: PluginTypes,
    ) -> None:
        """A sink's ``actions.enricher`` names a configured enricher that can write back."""
        for name, options in sinks.items():
            actions = getattr(options, "actions", None)
            if not isinstance(actions, ActionsOptions):
                continue
            path = ("sinks", name, "actions", "enricher")
            found = enrichers.get(actions.enricher)
            if found is None:
                known = ", ".join(sorted(enrichers)) or "none"
                self.add(
                    path,
                    f"sinks.{name}.actions.enricher: no enricher {actions.enricher!r}"
                    f" (configured: {known})",
                )
            elif not issubclass(types.enrichers[found.type], AlertWriter):
                self.add(
                    path,
                    f"sinks.{name}.actions.enricher: enricher {actions.enricher!r} (type"
                    f" {found.type}) cannot act on alerts; use a sekoia enricher",
                )

    def check_leases(self, app: AppConfig, sinks: Mapping[str, SinkOptions]) -> None:
        """An attempt must end before its lease does, or another worker sends it again."""
        lease = app.delivery.lease
        for name, options in sinks.items():
            bound = attempt_bound(options.timeout)
            if bound >= lease:
                self.add(
                    ("sinks", name),
                    f"sinks.{name}: an attempt may last {bound:g}s (timeout and grace), "
                    f"not less than delivery.lease ({lease:g}s): lower timeout or raise the lease",
                )
