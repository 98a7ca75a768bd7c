"""A config cannot exhaust memory, the stack or time: bombs, recursive aliases, huge files.

Each is refused with ``file:line:col`` pointing at the cause, by ``check`` and by every loader.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from notirouter.cli import main
from notirouter.config.errors import ConfigError
from notirouter.config.loader import load_config, load_config_text, load_queue_config
from notirouter.config.yaml_bounds import MAX_ALIASED_VALUES, MAX_CONFIG_BYTES, MAX_CONFIG_DEPTH


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "bomb.yaml", environ={})
    return [str(problem) for problem in caught.value.problems]


def laughs(levels: int, width: int = 10) -> str:
    """The classic YAML bomb: each level is ``width`` aliases of the one before."""
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_at_the_alias_that_crosses_the_limit() -> None:
    # Five levels of ten: 111,111 values once expanded, from 250 bytes. (Nine levels, the
    # 590-byte file of the report, reached 3 GB.)
    text = laughs(5)
    assert len(text) < 300
    # Aliases add 12,330 values before line 5, 11,111 each there: the 8th *l3 crosses.
    assert problems(text) == [
        f"bomb.yaml:5:{10 + 5 * 7}: alias *l3 takes what aliases add to the config past "
        f"{MAX_ALIASED_VALUES} values (nested aliases multiply)"
    ]
    [nine_levels] = problems(laughs(9, 9))
    assert nine_levels.startswith("bomb.yaml:6:10: alias *l4 takes what aliases add")


def test_a_merge_key_bomb_is_refused_too() -> None:
    text = "a: &a {" + ", ".join(f"k{i}: v" for i in range(400)) + "}\n"
    text += "b: &b [" + ", ".join(["*a"] * 400) + "]\n"
    text += "routes: [{<<: *b}]\n"
    # Each *a adds 801 values: the 125th crosses.
    assert problems(text) == [
        f"bomb.yaml:2:{8 + 4 * 124}: alias *a takes what aliases add to the config past "
        f"{MAX_ALIASED_VALUES} values (nested aliases multiply)"
    ]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("server: &s\n  nested: *s\n", "bomb.yaml:2:11"),
        ("routes: &r [{name: x, sinks: *r}]\n", "bomb.yaml:1:30"),
    ],
)
def test_a_recursive_alias_is_a_problem_not_a_recursion_error(text: str, where: str) -> None:
    anchor = text.split("&", 1)[1].split()[0]
    assert problems(text) == [
        f"{where}: alias *{anchor} is inside the node &{anchor} it names "
        "(a recursive alias cannot be expanded)"
    ]


@pytest.mark.parametrize("depth", [MAX_CONFIG_DEPTH + 1, 900])
def test_nesting_beyond_the_limit_is_refused_where_it_crosses(depth: int) -> None:
    text = "server: " + "[" * (depth - 1) + "]" * (depth - 1) + "\n"
    [problem] = problems(text)
    assert problem == (
        f"bomb.yaml:1:{9 + MAX_CONFIG_DEPTH - 1}: nested deeper than {MAX_CONFIG_DEPTH} "
        "levels (aliases expanded)"
    )


def test_an_alias_counts_at_its_expanded_depth() -> None:
    deep = "[" * 20 + "]" * 20
    text = f"a: &a {deep}\nb: {'[' * 12}*a{']' * 12}\n"
    [problem] = problems(text)
    assert problem == (
        f"bomb.yaml:2:{3 + 12 + 1}: nested deeper than {MAX_CONFIG_DEPTH} levels (aliases expanded)"
    )


def test_a_file_larger_than_the_limit_is_refused_without_reading_it_all(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    line = "# " + "x" * 97 + "\n"  # 100 bytes
    path = write_config("sinks: {console: {type: log}}\n" + line * (MAX_CONFIG_BYTES // 100 + 1))
    assert main(["check", "-c", str(path)]) == 1
    err = capsys.readouterr().err
    head = path.read_bytes()[:MAX_CONFIG_BYTES]
    expected_line = head.count(b"\n") + 1
    expected_column = len(head) - head.rfind(b"\n")
    assert f"{path}:{expected_line}:{expected_column}: the config is larger than" in err
    with pytest.raises(ConfigError):
        load_queue_config(path)
    with pytest.raises(ConfigError):
        load_config(path, environ={})


def test_a_config_within_the_bounds_still_loads(write_config: Callable[..., Path]) -> None:
    routes = "".join(
        f"  - {{name: r{i}, match: {{type: alert}}, sinks: [console], continue: true}}\n"
        for i in range(2000)
    )
    path = write_config(
        f"x-anchors:\n  defaults: &d {{type: log}}\nsinks:\n  console: *d\nroutes:\n{routes}"
    )
    config = load_config(path, environ={})
    assert len(config.routes.routes) == 2000
