"""Helpers for the chat sink tests: building sinks without a network, walking payloads."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

from notirouter.api.http import HttpClient
from notirouter.api.manager import collect_types, make_plugin_manager
from notirouter.api.sink import Sink, SinkContext

CHAT_SINKS = ("teams", "mattermost", "slack", "discord")
# A URL shaped like each service's, whose token must never show up in a failure detail.
SECRET = "s3cr3tT0kenABCDEFGHIJKLMNOPQRSTUV"


@cache
def _sink_types() -> dict[str, type[Sink[Any]]]:
    return dict(collect_types(make_plugin_manager(load_entry_points=False)).sinks)


def build_sink(type_name: str, **options: Any) -> Sink[Any]:
    """A sink as the config builds it, for rendering only (its HTTP client never opens)."""
    options.setdefault("url", f"https://chat.example.com/hooks/{SECRET}")
    cls = _sink_types()[type_name]
    validated = cls.Options.model_validate({"type": type_name, **options})
    return cls("under-test", validated, SinkContext(name="under-test", http=HttpClient()))


def walk_strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a JSON value, with its path (``attachments.0.content.body.1.text``)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from walk_strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk_strings(item, f"{path}.{index}" if path else str(index))
