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
from urllib.parse import urlsplit

import pluggy
from pydantic import BaseModel

from notirouter.api.enricher import EnricherOptions
from notirouter.api.manager import PluginTypes, collect_types, make_plugin_manager
from notirouter.api.sink import SinkOptions
from notirouter.config.checker import Checker
from notirouter.config.errors import ConfigError, ConfigProblem, Position
from notirouter.config.located_yaml import load_located
from notirouter.config.models import AppConfig, QueueConfig
from notirouter.config.routes import compile_routes
from notirouter.config.time_windows import compile_windows
from notirouter.config.yaml_bounds import MAX_CONFIG_BYTES, size_problem
from notirouter.redaction import expand_secrets, secret_values
from notirouter.routing.table import RouteTable

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
    checker = Checker(document)
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
        with Path(file).open("rb") as stream:
            data = stream.read(MAX_CONFIG_BYTES + 1)  # never more than the limit and a byte
        too_large = size_problem(file, data)
        if too_large is not None:
            raise ConfigError([too_large])
        return data.decode("utf-8")
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
    checker = Checker(document)
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
    checker.check_actions(sink_options, enricher_options, types)
    routes = compile_routes(checker, app, compile_windows(checker, app))
    if checker.problems:
        raise ConfigError(checker.problems)
    app.queue.path = resolve_queue_path(app.queue.path, file)
    return LoadedConfig(
        path=file,
        app=app,
        manager=manager,
        types=types,
        sink_options=sink_options,
        enricher_options=enricher_options,
        routes=RouteTable(routes, app.communities),
        secrets=_secrets(app, [*sink_options.values(), *enricher_options.values()]),
    )


def _secrets(app: AppConfig, options: list[BaseModel]) -> frozenset[str]:
    found = [hook.token.get_secret_value() for hook in app.hooks]
    if app.queue.url is not None:
        # The password (and a query string, which may carry one) is secret; the rest of the
        # URL names the database in messages, as check prints it.
        parts = urlsplit(app.queue.url.get_secret_value())
        found.extend(part for part in (parts.password, parts.query) if part)
    for model in options:
        found.extend(secret_values(model))
    return expand_secrets(found)
