"""The plugin system: factory, built-ins, entry points, duplicates, blocking, hook docs."""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, get_type_hints

import aiohttp
import pytest
from notirouter.plugins import DEFAULT_PLUGINS

from notirouter import Event, Message, Sink, hookimpl
from notirouter.api import spec as hookspecs
from notirouter.api.manager import PluginError, collect_types, make_plugin_manager
from notirouter.cli import main
from notirouter.config.errors import ConfigError
from notirouter.config.loader import load_config
from plugins.log import LogSink
from tests.conftest import TOKEN
from tests.serving import serve

README = Path(__file__).resolve().parents[1] / "README.md"


def test_factory_builds_independent_managers() -> None:
    first, second = make_plugin_manager(), make_plugin_manager()
    assert first is not second
    first.unregister(name="log")
    assert "log" in collect_types(second).sinks
    assert "log" not in collect_types(first).sinks


def test_builtins_first_then_entry_points() -> None:
    manager = make_plugin_manager()
    names = [name for name, _ in manager.list_name_plugin()]
    builtins = [name for name, _ in DEFAULT_PLUGINS]
    assert names[: len(builtins)] == builtins
    assert "jsonl" in names[len(builtins) :]
    [(plugin, _dist)] = [
        (p, d) for p, d in manager.list_plugin_distinfo() if d.project_name == "notirouter-jsonl"
    ]
    assert manager.get_name(plugin) == "jsonl"
    assert collect_types(manager).provided_by[("sinks", "jsonl")] == "jsonl"


def test_entry_points_can_be_skipped() -> None:
    assert "jsonl" not in collect_types(make_plugin_manager(load_entry_points=False)).sinks


class _DuplicateLog:
    @hookimpl
    def register_sinks(self, register: Callable[[type[Sink[Any]]], None]) -> None:
        register(LogSink)


def test_duplicate_type_name_is_a_startup_error() -> None:
    manager = make_plugin_manager(extra_plugins=[("copycat", _DuplicateLog())])
    with pytest.raises(
        PluginError,
        match="sink type 'log' is provided twice: by plugin 'log' and by plugin 'copycat'",
    ):
        collect_types(manager)


class _Misspelled:
    @hookimpl
    def register_sinkz(self, register: Any) -> None:  # not a hook
        pass


def test_unknown_hook_implementation_fails_check_pending() -> None:
    with pytest.raises(PluginError, match="register_sinkz"):
        make_plugin_manager(extra_plugins=[("typo", _Misspelled())])


def test_blocking_a_plugin_by_name(write_config: Callable[..., Path]) -> None:
    assert "webhook" not in collect_types(make_plugin_manager(blocked=["webhook"])).sinks
    path = write_config("plugins: {block: [jsonl]}\nsinks:\n  file: {type: jsonl, path: /tmp/x}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    [problem] = caught.value.problems
    assert "unknown sink type 'jsonl'" in problem.message


class _Formatter:
    @hookimpl
    def format_message(self, event: Event, variables: Mapping[str, Any]) -> Message | None:
        return Message(title=f"custom {event.type}")


def test_later_plugins_override_firstresult_hooks() -> None:
    manager = make_plugin_manager(extra_plugins=[("custom", _Formatter())])
    message = manager.hook.format_message(event=Event(type="alert", action="created"), variables={})
    assert message.title == "custom alert"


def _readme_signature(name: str) -> str | None:
    match = re.search(rf"^#### `({name}\(.*\) -> .*)`$", README.read_text(), re.MULTILINE)
    return match.group(1) if match else None


@pytest.mark.parametrize(
    "spec",
    [
        f
        for name, f in vars(hookspecs).items()
        if inspect.isfunction(f) and hasattr(f, "notirouter_spec")
    ],
    ids=lambda f: f.__name__,
)
def test_every_hookspec_is_typed_documented_and_in_the_readme(spec: Callable[..., Any]) -> None:
    hints = get_type_hints(spec)
    parameters = inspect.signature(spec).parameters
    assert "return" in hints and all(p in hints for p in parameters), "untyped hookspec"
    assert spec.__doc__ and len(spec.__doc__.strip()) > 40, "hookspec without a docstring"
    readme = _readme_signature(spec.__name__)
    assert readme is not None, f"README has no '#### `{spec.__name__}(...)`' heading"
    # Annotations are strings (postponed evaluation): the signature reads as in the source.
    assert readme == spec.__name__ + str(inspect.signature(spec)).replace("'", "")


def test_hookspec_set_is_the_documented_one() -> None:
    specs = sorted(n for n, f in vars(hookspecs).items() if hasattr(f, "notirouter_spec"))
    documented = sorted(re.findall(r"^#### `(\w+)\(", README.read_text(), re.MULTILINE))
    assert specs == documented


def test_plugins_command_lists_the_example_plugin(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--json"]) == 0
    listed = {info["name"]: info for info in json.loads(capsys.readouterr().out)}
    assert listed["jsonl"]["distribution"] == "notirouter-jsonl"
    assert listed["jsonl"]["version"] == "1.2.0"
    assert listed["jsonl"]["builtin"] is False
    assert listed["jsonl"]["provides"]["sinks"] == ["jsonl"]
    assert listed["log"]["builtin"] is True
    assert listed["sekoia"]["provides"]["sources"] == ["sekoia"]
    assert main(["plugins"]) == 0
    assert "jsonl 1.2.0 (notirouter-jsonl)" in capsys.readouterr().out


async def test_third_party_sink_from_entry_point_delivers_an_event(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    out = tmp_path / "delivered.jsonl"
    path = write_config(
        f"""
        hooks: [{{name: sekoia, token: {TOKEN}}}]
        queue: {{path: "{tmp_path / "q.db"}"}}
        sinks:
          file: {{type: jsonl, path: "{out}"}}
        routes:
          - {{name: all, sinks: [file], title: "alert {{{{ attributes.short_id }}}}"}}
        """
    )
    event = {"type": "alert", "action": "created", "attributes": {"short_id": "ALx"}}
    async with serve(path) as served, aiohttp.ClientSession() as client:
        async with client.post(f"{served.url}/hooks/{TOKEN}", json=event) as response:
            assert response.status == 202
        for _ in range(100):
            if out.exists() and out.read_text():
                break
            await __import__("asyncio").sleep(0.05)
    line = json.loads(out.read_text())
    assert (line["sink"], line["title"], line["route"]) == ("file", "alert ALx", "all")
