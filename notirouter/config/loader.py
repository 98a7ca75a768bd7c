"""Load, substitute and validate a config file; report every problem as ``file:line:col``.

Validation runs in layers so that one mistake does not hide the others: YAML and variables,
the core schema, each sink's and enricher's ``Options`` model, then cross-references and
templates. All problems are collected and raised together in one :class:`ConfigError`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy
from pydantic import BaseModel, TypeAdapter, ValidationError

from notirouter.config.errors import ConfigError, ConfigProblem, Position
from notirouter.config.located_yaml import LocatedDocument, load_located
from notirouter.config.models import AppConfig, QueueConfig, RouteConfig
from notirouter.enricher import EnricherOptions
from notirouter.plugin_manager import PluginTypes, collect_types, make_plugin_manager
from notirouter.routing import Renderer, Route, RouteTable
from notirouter.secrets import expand_secrets, secret_values
from notirouter.sink import SinkOptions, attempt_bound
from notirouter.templating import TemplateCompileError, Templates

DEFAULT_CONFIG_PATH = "notirouter.yaml"
ManagerFactory = Callable[[Iterable[str]], pluggy.PluginManager]


@dataclass
class LoadedConfig:
    """A validated configuration with everything compiled that can be compiled at load."""

    path: str
    app: AppConfig
    manager: pluggy.PluginManager
    types: PluginTypes
    sink_options: dict[str, SinkOptions]
    enricher_options: dict[str, EnricherOptions]
    routes: RouteTable
    secrets: frozenset[str] = field(default_factory=frozenset)


def resolve_queue_path(path: str, config_file: str) -> str:
    """A relative ``queue.path`` is relative to the config file, not to the current directory.

    ``serve`` started by systemd (working directory ``/``) and ``dead list`` run from a shell
    elsewhere must open the same queue file.
    """
    if os.path.isabs(path):
        return path
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(config_file)), path))


def load_queue_config(path: str | os.PathLike[str]) -> QueueConfig:
    """Only the ``queue:`` section, for the ``dead`` commands.

    An operator inspecting dead letters should not need every sink's secrets in the
    environment: variables used outside ``queue:`` may be unset.
    """
    file = os.fspath(path)
    document = load_located(_read(file), file, os.environ)
    outside = {
        problem for where, problem in document.unset_paths.items() if where[:1] != ("queue",)
    }
    checker = _Checker(document)
    checker.problems.extend(p for p in document.problems if p not in outside)
    raw = document.data.get("queue", {}) if isinstance(document.data, dict) else {}
    queue: QueueConfig | None = checker.validate(QueueConfig, raw, ("queue",))
    if checker.problems or queue is None:
        raise ConfigError(checker.problems)
    queue.path = resolve_queue_path(queue.path, file)
    return queue


def default_config_path() -> str:
    """``$NOTIROUTER_CONFIG``, else ``./notirouter.yaml``."""
    return os.environ.get("NOTIROUTER_CONFIG") or DEFAULT_CONFIG_PATH


def _default_manager(blocked: Iterable[str]) -> pluggy.PluginManager:
    return make_plugin_manager(blocked=blocked)


def load_config(
    path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    manager_factory: ManagerFactory = _default_manager,
) -> LoadedConfig:
    """Read and validate ``path``; raise :class:`ConfigError` listing every problem."""
    file = os.fspath(path)
    return load_config_text(_read(file), file, environ=environ, manager_factory=manager_factory)


def _read(file: str) -> str:
    try:
        return Path(file).read_text(encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError([ConfigProblem(Position(file, 1, 1), f"cannot read: {reason}")]) from None
    except UnicodeDecodeError:
        raise ConfigError([ConfigProblem(Position(file, 1, 1), "not UTF-8 text")]) from None


def load_config_text(
    text: str,
    file: str,
    *,
    environ: Mapping[str, str] | None = None,
    manager_factory: ManagerFactory = _default_manager,
) -> LoadedConfig:
    """Validate config ``text`` as if read from ``file``."""
    document = load_located(text, file, os.environ if environ is None else environ)
    checker = _Checker(document)
    checker.problems.extend(document.problems)
    if document.data is not None and not isinstance(document.data, dict):
        checker.add((), "the config must be a mapping of sections (server, hooks, routes, ...)")
        raise ConfigError(checker.problems)
    if document.data is None:
        raise ConfigError(checker.problems)
    app = checker.validate_sections(document.data)
    manager = manager_factory(app.plugins.block)
    types = collect_types(manager)
    sink_options = checker.plugin_options("sinks", app.sinks, types.sinks, SinkOptions)
    enricher_options = checker.plugin_options(
        "enrichers", app.enrichers, types.enrichers, EnricherOptions
    )
    checker.check_hooks(app, types)
    checker.check_leases(app, sink_options)
    routes = checker.compile_routes(app, types)
    if checker.problems:
        raise ConfigError(checker.problems)
    app.queue.path = resolve_queue_path(app.queue.path, file)
    return LoadedConfig(
        path=file,
        app=app,
        manager=manager,
        types=types,
        sink_options=sink_options,  # type: ignore[arg-type]
        enricher_options=enricher_options,  # type: ignore[arg-type]
        routes=RouteTable(routes),
        secrets=_secrets(app, [*sink_options.values(), *enricher_options.values()]),
    )


class _Checker:
    def __init__(self, document: LocatedDocument) -> None:
        self.document = document
        self.problems: list[ConfigProblem] = []
        self.failed_sections: set[str] = set()
        self.route_positions: list[int] = []
        self.templates = Templates()

    def add(self, path: tuple[str | int, ...], message: str, *, key: bool = False) -> None:
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
                routes = [
                    self.validate(RouteConfig, item, ("routes", i)) for i, item in enumerate(raw)
                ]
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

    def validate(self, model: Any, data: Any, base: tuple[str | int, ...]) -> Any:
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
        base_options: type[BaseModel],
    ) -> dict[str, BaseModel]:
        validated: dict[str, BaseModel] = {}
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

    def check_leases(self, app: AppConfig, sinks: dict[str, BaseModel]) -> None:
        """An attempt must end before its lease does, or another worker sends it again."""
        lease = app.delivery.lease
        for name, options in sinks.items():
            bound = attempt_bound(getattr(options, "timeout", 0.0))
            if bound >= lease:
                self.add(
                    ("sinks", name),
                    f"sinks.{name}: an attempt may last {bound:g}s (timeout and grace), "
                    f"not less than delivery.lease ({lease:g}s): lower timeout or raise the lease",
                )

    def compile_routes(self, app: AppConfig, types: PluginTypes) -> list[Route]:
        routes: list[Route] = []
        names: set[str] = set()
        for i, config in zip(self.route_positions, app.routes, strict=True):
            path: tuple[str | int, ...] = ("routes", i)
            if config.name in names:
                self.add((*path, "name"), f"routes: duplicate route name {config.name!r}")
            names.add(config.name)
            for j, sink in enumerate(config.sinks):
                if sink not in app.sinks and "sinks" not in self.failed_sections:
                    self.add(
                        (*path, "sinks", j),
                        f"routes.{config.name}: unknown sink {sink!r} "
                        f"(defined: {', '.join(sorted(app.sinks)) or 'none'})",
                    )
            for j, enricher in enumerate(config.enrich):
                if enricher not in app.enrichers and "enrichers" not in self.failed_sections:
                    self.add(
                        (*path, "enrich", j),
                        f"routes.{config.name}: unknown enricher {enricher!r} "
                        f"(defined: {', '.join(sorted(app.enrichers)) or 'none'})",
                    )
            route = self._compile_route(config, i, path)
            if route is not None:
                routes.append(route)
        return routes

    def _compile_route(
        self, config: RouteConfig, index: int, path: tuple[str | int, ...]
    ) -> Route | None:
        ok = True

        def template(value: str | None, *where: str | int) -> Renderer | None:
            nonlocal ok
            if value is None:
                return None
            try:
                return self.templates.compile_template(value)
            except TemplateCompileError as exc:
                ok = False
                self.add((*path, *where), f"routes.{config.name}.{where[0]}: {exc}")
                return None

        when = None
        if config.when is not None:
            try:
                when = self.templates.compile_condition(config.when)
            except TemplateCompileError as exc:
                ok = False
                self.add((*path, "when"), f"routes.{config.name}.when: does not compile: {exc}")
        title = template(config.title, "title")
        text = template(config.text, "text")
        facts: list[tuple[str, Renderer]] = []
        for name, value in (config.facts or {}).items():
            compiled = template(value, "facts", name)
            if compiled is not None:
                facts.append((name, compiled))
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
        )


def _matcher(value: str | list[str]) -> frozenset[str] | None:
    values = [value] if isinstance(value, str) else value
    if "*" in values:
        return None
    return frozenset(values)


def _secrets(app: AppConfig, options: list[BaseModel]) -> frozenset[str]:
    found = [hook.token.get_secret_value() for hook in app.hooks]
    for model in options:
        found.extend(secret_values(model))
    return expand_secrets(found)
