"""The plugin-manager factory and the registry of plugin-provided types.

No module-global manager: :func:`make_plugin_manager` builds a fresh one (tests build their
own). Built-ins come from :data:`notirouter.plugins.DEFAULT_PLUGINS`, then third parties from the
``notirouter`` entry-point group, so that third parties are asked first by ``firstresult`` hooks.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pluggy

from notirouter.api import spec as hookspecs
from notirouter.api.enricher import Enricher
from notirouter.api.sink import Sink
from notirouter.api.source import Source


class PluginError(Exception):
    """A plugin could not be loaded or registered something invalid."""


def make_plugin_manager(
    *,
    blocked: Iterable[str] = (),
    load_entry_points: bool = True,
    extra_plugins: Iterable[tuple[str, object]] = (),
) -> pluggy.PluginManager:
    """Build a plugin manager with the built-ins, then entry-point plugins, then ``extra``.

    ``blocked`` names plugins (built-in short names like ``webhook`` or entry-point names)
    that must not be registered, e.g. to replace a built-in or to switch off a broken plugin.
    """
    # Imported by name: the built-ins live in the top-level plugins/ folder, installed as
    # notirouter.plugins, and import the public notirouter API themselves.
    builtins = importlib.import_module("notirouter.plugins")
    default_plugins: tuple[tuple[str, str], ...] = builtins.DEFAULT_PLUGINS
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    for name in blocked:
        manager.set_blocked(name)
    for name, module_name in default_plugins:
        if manager.is_blocked(name):
            continue
        manager.register(importlib.import_module(module_name), name=name)
    if load_entry_points:
        try:
            manager.load_setuptools_entrypoints(hookspecs.PROJECT_NAME)
        except Exception as exc:
            raise PluginError(f"cannot load an entry-point plugin: {exc}") from exc
    for name, plugin in extra_plugins:
        if not manager.is_blocked(name):
            manager.register(plugin, name=name)
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(str(exc)) from exc
    return manager


T = TypeVar("T")


@dataclass
class PluginTypes:
    """Every source, sink and enricher type the registered plugins provide."""

    sources: dict[str, type[Source]] = field(default_factory=dict)
    sinks: dict[str, type[Sink[Any]]] = field(default_factory=dict)
    enrichers: dict[str, type[Enricher[Any]]] = field(default_factory=dict)
    provided_by: dict[tuple[str, str], str] = field(default_factory=dict)

    def types_of(self, plugin_name: str) -> dict[str, list[str]]:
        """The types ``plugin_name`` provides, by kind (``sources``, ``sinks``, ``enrichers``)."""
        provided: dict[str, list[str]] = {"sources": [], "sinks": [], "enrichers": []}
        for (kind, type_name), provider in self.provided_by.items():
            if provider == plugin_name:
                provided[kind].append(type_name)
        return provided


def collect_types(manager: pluggy.PluginManager) -> PluginTypes:
    """Call the registration hooks plugin by plugin; reject duplicate or malformed types."""
    types = PluginTypes()
    _collect(manager, "register_sources", "sources", types.sources, Source, types)
    _collect(manager, "register_sinks", "sinks", types.sinks, Sink, types)
    _collect(manager, "register_enrichers", "enrichers", types.enrichers, Enricher, types)
    return types


def _collect(
    manager: pluggy.PluginManager,
    hook_name: str,
    kind: str,
    into: dict[str, type[T]],
    base: type,
    types: PluginTypes,
) -> None:
    hook = getattr(manager.hook, hook_name)
    # get_hookimpls() is in registration order (built-ins first), so a duplicate is blamed
    # on the plugin registered later.
    for impl in hook.get_hookimpls():
        impl.function(register=_registrar(impl.plugin_name, kind, into, base, types))


def _registrar(
    plugin_name: str, kind: str, into: dict[str, type[T]], base: type, types: PluginTypes
) -> Callable[[type[T]], None]:
    def register(cls: type[T]) -> None:
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise PluginError(f"plugin {plugin_name!r} registered {cls!r}, not a {base.__name__}")
        type_name = getattr(cls, "type_name", None)
        if not isinstance(type_name, str) or not type_name:
            raise PluginError(f"plugin {plugin_name!r}: {cls.__name__} has no type_name")
        if type_name in into:
            other = types.provided_by[(kind, type_name)]
            raise PluginError(
                f"{kind[:-1]} type {type_name!r} is provided twice: "
                f"by plugin {other!r} and by plugin {plugin_name!r}"
            )
        into[type_name] = cls
        types.provided_by[(kind, type_name)] = plugin_name

    return register


@dataclass(frozen=True)
class PluginInfo:
    """One registered plugin, for ``notirouter plugins``."""

    name: str
    version: str
    distribution: str
    builtin: bool
    provides: dict[str, list[str]]
    hooks: list[str]


def describe_plugins(manager: pluggy.PluginManager, types: PluginTypes) -> list[PluginInfo]:
    """Name, version, distribution, provided types and implemented hooks of every plugin."""
    dists = {id(plugin): dist for plugin, dist in manager.list_plugin_distinfo()}
    own_version = importlib.metadata.version("notirouter")
    infos = []
    for name, plugin in manager.list_name_plugin():
        if plugin is None:
            continue
        dist = dists.get(id(plugin))
        hooks = sorted(caller.name for caller in manager.get_hookcallers(plugin) or [])
        infos.append(
            PluginInfo(
                name=name,
                version=dist.version if dist is not None else own_version,
                distribution=dist.project_name if dist is not None else "notirouter",
                builtin=dist is None,
                provides=types.types_of(name),
                hooks=hooks,
            )
        )
    return infos
