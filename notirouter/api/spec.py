"""Hook specifications: everything a notirouter plugin can implement.

A plugin is a module or object with functions marked ``@hookimpl`` whose names are the hooks
below. Built-in plugins and third-party distributions (entry-point group ``notirouter``) use the
same hooks; third-party plugins are registered after the built-ins, so for ``firstresult`` hooks
they are asked first and may override. Each hook is documented in the README under a heading
with its signature, and a test fails when one is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pluggy

from notirouter.api.enricher import Enricher
from notirouter.api.events import Event
from notirouter.api.message import Message
from notirouter.api.sink import Sink
from notirouter.api.source import Source

PROJECT_NAME = "notirouter"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_sources(register: Callable[[type[Source]], None]) -> None:
    """Register source types: call ``register(SourceClass)`` once per class.

    A source parses a webhook body into a typed :class:`~notirouter.api.events.Event`; a hook's
    ``source:`` names one by its ``type_name``. A type name registered twice is a startup error.
    """


@hookspec
def register_sinks(register: Callable[[type[Sink[Any]]], None]) -> None:
    """Register sink types: call ``register(SinkClass)`` once per class.

    The config's ``sinks.<name>.type`` names a sink type by its ``type_name``; the rest of that
    mapping is validated by the class's ``Options`` model. A duplicate type name is an error.
    """


@hookspec
def register_enrichers(register: Callable[[type[Enricher[Any]]], None]) -> None:
    """Register enricher types: call ``register(EnricherClass)`` once per class.

    The config's ``enrichers.<name>.type`` names one by its ``type_name``; routes list the
    enricher names they need in ``enrich:``. A duplicate type name is an error.
    """


@hookspec(firstresult=True)
def format_message(event: Event, variables: Mapping[str, Any]) -> Message | None:
    """Build the default :class:`~notirouter.api.message.Message` for ``event``.

    ``variables`` is the template context: ``event``, ``type``, ``action``, the enrichers'
    variables (e.g. ``alert``) and ``enrichment_errors`` (enricher name -> reason). Return
    ``None`` for events you do not know; the first non-``None`` answer wins, and the core falls
    back to a generic message. Route-level ``title``/``text``/``facts`` templates are applied
    afterwards, so formatters need not know about them.
    """
