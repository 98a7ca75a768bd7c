"""From event to message: the formatter hook, the generic message, route-level overrides."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from notirouter import Event, Fact, Message, Severity, hookimpl
from notirouter.api.escape import reveal_invisible
from notirouter.api.manager import make_plugin_manager
from notirouter.config.loader import load_config
from notirouter.routing.pipeline import Pipeline
from notirouter.runtime import Runtime

EVENT = {
    "type": "alert",
    "action": "created",
    "attributes": {"uuid": "u-1", "short_id": "ALx", "tags": ["a", "b"]},
    "metadata": {"created": "2024-01-02T03:04:05Z"},
}


def runtime(write_config: Callable[..., Path], routes: str, plugins: Any = ()) -> Runtime:
    path = write_config(f"sinks:\n  a: {{type: log}}\nroutes:\n{routes}")

    def factory(blocked: Any) -> Any:
        # Without the Sekoia formatter, so that these tests see the core's own behaviour.
        return make_plugin_manager(blocked=[*blocked, "sekoia_messages"], extra_plugins=plugins)

    return Runtime(load_config(path, environ={}, manager_factory=factory))


async def route(pipeline: Pipeline, payload: dict[str, Any]) -> list[Message]:
    routed = await pipeline.route(pipeline.parse("sekoia", payload))
    return [message for _, message in routed.messages]


async def test_generic_message_when_no_formatter_knows_the_event(
    write_config: Callable[..., Path],
) -> None:
    [message] = await route(runtime(write_config, "  - {name: r, sinks: [a]}").pipeline, EVENT)
    assert message.title == "alert created"
    assert message.severity is Severity.INFO
    assert message.thread_key == "u-1"
    assert Fact(name="tags", value='["a", "b"]') in message.facts
    assert message.route == "r"
    assert message.event["attributes"]["short_id"] == "ALx"


async def test_route_overrides_title_text_and_facts(write_config: Callable[..., Path]) -> None:
    routes = """  - name: r
    sinks: [a]
    title: "[{{ type | upper }}] {{ attributes.short_id }}"
    text: "default was: {{ message.title }}; created {{ metadata.created_at | isotime }}"
    facts:
      Alert: "{{ attributes.short_id }}"
      Missing: "{{ alert.urgency.display }}"
"""
    [message] = await route(runtime(write_config, routes).pipeline, EVENT)
    assert message.title == "[ALERT] ALx"
    assert message.text == "default was: alert created; created 2024-01-02T03:04:05Z"
    assert message.facts == (Fact(name="Alert", value="ALx"), Fact(name="Missing", value=""))


async def test_event_text_is_data_never_template(write_config: Callable[..., Path]) -> None:
    hostile = {**EVENT, "attributes": {"short_id": "{{ 7 * 7 }}{% raw %}"}}
    routes = '  - {name: r, sinks: [a], title: "id {{ attributes.short_id }}"}\n'
    [message] = await route(runtime(write_config, routes).pipeline, hostile)
    assert message.title == "id {{ 7 * 7 }}{% raw %}"


async def test_template_failure_keeps_the_default(write_config: Callable[..., Path]) -> None:
    routes = '  - {name: r, sinks: [a], title: "{{ attributes.short_id + 1 }}"}\n'
    [message] = await route(runtime(write_config, routes).pipeline, EVENT)
    assert message.title == "alert created"


async def test_sandbox_blocks_unsafe_attribute_access(write_config: Callable[..., Path]) -> None:
    routes = '  - {name: r, sinks: [a], title: "{{ attributes.__class__.__mro__ }}"}\n'
    [message] = await route(runtime(write_config, routes).pipeline, EVENT)
    assert "class" not in message.title


class _Formatter:
    @hookimpl
    def format_message(self, event: Event, variables: Mapping[str, Any]) -> Message | None:
        if event.type != "alert":
            return None
        return Message(title=f"Alert {variables['attributes']['short_id']}", severity=Severity.HIGH)


async def test_formatter_hook_builds_the_message_and_routes_still_override(
    write_config: Callable[..., Path],
) -> None:
    routes = '  - {name: r, sinks: [a], text: "{{ message.title }} via {{ message.severity }}"}\n'
    pipeline = runtime(write_config, routes, [("fmt", _Formatter())]).pipeline
    [alert] = await route(pipeline, EVENT)
    assert (alert.title, alert.severity, alert.text) == (
        "Alert ALx",
        Severity.HIGH,
        "Alert ALx via high",
    )
    [case] = await route(pipeline, {**EVENT, "type": "case"})
    assert case.title == "case created"  # the formatter declined: generic message


async def test_metadata_created_is_accepted_as_created_at(
    write_config: Callable[..., Path],
) -> None:
    pipeline = runtime(write_config, "  - {name: r, sinks: [a]}").pipeline
    event = pipeline.parse("sekoia", EVENT)
    assert event.template_data()["metadata"]["created_at"] == "2024-01-02T03:04:05Z"
    preferred = pipeline.parse(
        "sekoia", {**EVENT, "metadata": {"created_at": "2025-01-01T00:00:00Z", "created": "x"}}
    )
    assert preferred.template_data()["metadata"]["created_at"] == "2025-01-01T00:00:00Z"


def test_dedupe_key_prefers_metadata_uuid(write_config: Callable[..., Path]) -> None:
    source = runtime(write_config, "  - {name: r, sinks: [a]}").sources["sekoia"]
    with_uuid = source.parse({**EVENT, "metadata": {"uuid": "m-1"}})
    assert source.dedupe_key(with_uuid, b"anything") == "sekoia:m-1"
    without = source.parse(EVENT)
    assert source.dedupe_key(without, b"a") != source.dedupe_key(without, b"b")


async def test_bidi_and_invisible_characters_are_shown_in_every_field(
    write_config: Callable[..., Path],
) -> None:
    spoof = {**EVENT, "attributes": {"uuid": "u-1", "short_id": "invoice\u202efdp.exe\u200b\x1b"}}
    routes = """  - name: r
    sinks: [a]
    title: "{{ attributes.short_id }} (ALx)"
    facts:
      "file\u2066": "{{ attributes.short_id }}"
"""
    [message] = await route(runtime(write_config, routes).pipeline, spoof)
    shown = "invoice⟨U+202E⟩fdp.exe⟨U+200B⟩⟨U+001B⟩"
    assert message.title == f"{shown} (ALx)"
    assert message.facts == (Fact(name="file⟨U+2066⟩", value=shown),)
    # The generic message's own facts (no route template) are revealed too.
    [generic] = await route(runtime(write_config, "  - {name: r, sinks: [a]}").pipeline, spoof)
    assert Fact(name="short_id", value=shown) in generic.facts


def test_reveal_leaves_ordinary_text_alone() -> None:
    text = "Zoë 🧑\u200d💻 C:\\Windows\\System32 15:06:57Z\n\tnext line"
    assert reveal_invisible(text) is text
