"""Config loading: every error as file:line:col, all at once, and no secret ever printed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from notirouter.config.errors import ConfigError
from notirouter.config.loader import load_config

GOOD = """
hooks:
  - name: sekoia
    token: ${HOOK_TOKEN}
    source: sekoia
queue:
  path: ${DB_PATH:-./var/test.db}
sinks:
  console: {type: log}
  forward: {type: webhook, url: "http://127.0.0.1:9/x"}
routes:
  - name: alerts
    match: {type: alert, action: [created, updated]}
    when: "attributes.short_id != 'skip'"
    sinks: [console, forward]
    continue: true
  - name: rest
    match: {type: "*"}
    sinks: [console]
"""

ENV = {"HOOK_TOKEN": "a-very-secret-token-123456"}


def problems(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=ENV if environ is None else environ)
    return [str(p) for p in caught.value.problems]


def test_valid_config_loads_with_substitution_and_defaults(
    write_config: Callable[..., Path],
) -> None:
    path = write_config(GOOD)
    config = load_config(path, environ=ENV)
    assert config.app.hooks[0].token.get_secret_value() == ENV["HOOK_TOKEN"]
    # A relative queue path is relative to the config file, wherever the command runs.
    assert config.app.queue.path == str(path.parent / "var" / "test.db")
    assert [r.name for r in config.routes.routes] == ["alerts", "rest"]
    assert config.routes.routes[0].continue_ is True
    assert ENV["HOOK_TOKEN"] in config.secrets
    assert "http://127.0.0.1:9/x" in config.secrets


def test_unknown_key_points_at_the_key(write_config: Callable[..., Path]) -> None:
    path = write_config(GOOD.replace("queue:\n", "queue:\n  pth: x\n"))
    assert problems(path) == [f"{path}:6:3: queue: unknown key 'pth'"]


def test_unknown_key_in_sink_options(write_config: Callable[..., Path]) -> None:
    path = write_config(GOOD.replace("console: {type: log}", "console: {type: log, colour: red}"))
    assert problems(path) == [f"{path}:8:24: sinks.console: unknown key 'colour'"]


def test_route_naming_unknown_sink_and_enricher(write_config: Callable[..., Path]) -> None:
    text = GOOD.replace(
        "sinks: [console, forward]", "sinks: [console, teams]\n    enrich: [sekoia]"
    )
    path = write_config(text)
    found = problems(path)
    assert f"{path}:14:22: routes.alerts: unknown sink 'teams' (defined: console, forward)" in found
    assert f"{path}:15:14: routes.alerts: unknown enricher 'sekoia' (defined: none)" in found
    assert len(found) == 2


def test_sink_of_unknown_type(write_config: Callable[..., Path]) -> None:
    path = write_config(GOOD.replace("console: {type: log}", "console: {type: pager}"))
    [problem] = problems(path)
    assert problem.startswith(f"{path}:8:19: sinks.console: unknown sink type 'pager' (installed: ")
    assert "log" in problem and "webhook" in problem


def test_duplicate_sink_name(write_config: Callable[..., Path]) -> None:
    path = write_config(
        GOOD.replace("  console: {type: log}\n", "  console: {type: log}\n  console: {type: log}\n")
    )
    assert problems(path) == [f"{path}:9:3: duplicate key 'console' (first defined at line 8)"]


def test_duplicate_route_and_hook_names(write_config: Callable[..., Path]) -> None:
    text = GOOD.replace("  - name: rest", "  - name: alerts").replace(
        "    source: sekoia\n",
        "    source: sekoia\n  - name: sekoia\n    token: another-token-0123456789\n",
    )
    path = write_config(text)
    found = problems(path)
    assert f"{path}:5:11: hooks: duplicate hook name 'sekoia'" in found
    assert f"{path}:18:11: routes: duplicate route name 'alerts'" in found


def test_short_token_is_rejected_without_printing_it(write_config: Callable[..., Path]) -> None:
    path = write_config(GOOD)
    found = problems(path, {"HOOK_TOKEN": "short-secret"})
    assert found == [
        f"{path}:3:12: hooks.0.token: Value error, a hook token needs at least 16 characters"
    ]
    assert "short-secret" not in "\n".join(found)


def test_when_that_does_not_compile(write_config: Callable[..., Path]) -> None:
    path = write_config(
        GOOD.replace("when: \"attributes.short_id != 'skip'\"", 'when: "alert.urgency >= "')
    )
    [problem] = problems(path)
    assert problem.startswith(f"{path}:13:11: routes.alerts.when: does not compile: ")


def test_template_that_does_not_compile(write_config: Callable[..., Path]) -> None:
    text = GOOD.replace(
        "    continue: true\n",
        "    continue: true\n    title: '{{ alert.title '\n    facts: {Host: '{% if %}'}\n",
    )
    path = write_config(text)
    found = problems(path)
    assert any(p.startswith(f"{path}:16:12: routes.alerts.title: ") for p in found), found
    assert any(p.startswith(f"{path}:17:19: routes.alerts.facts: ") for p in found), found


def test_webhook_payload_template_checked_at_load(write_config: Callable[..., Path]) -> None:
    text = GOOD.replace(
        'url: "http://127.0.0.1:9/x"}', "url: \"http://127.0.0.1:9/x\", payload: '{{ x '}"
    )
    path = write_config(text)
    [problem] = problems(path)
    assert problem.startswith(
        f"{path}:9:66: sinks.forward.payload: Value error, template does not compile"
    )


def test_unset_variable_names_the_variable_and_its_line(write_config: Callable[..., Path]) -> None:
    path = write_config(GOOD)
    found = problems(path, {})
    assert found == [
        f"{path}:3:12: environment variable HOOK_TOKEN is not set "
        "(set it, or write ${NAME:-default} for a default)"
    ]


def test_invalid_url_is_reported_without_the_url(write_config: Callable[..., Path]) -> None:
    text = GOOD.replace('url: "http://127.0.0.1:9/x"', 'url: "ftp://secret-host/path-token"')
    path = write_config(text)
    [problem] = problems(path)
    assert problem.startswith(f"{path}:9:33: sinks.forward.url: ")
    assert "must be an http:// or https:// URL" in problem
    assert "path-token" not in problem and "secret-host" not in problem


def test_all_problems_reported_at_once_in_file_order(write_config: Callable[..., Path]) -> None:
    text = (
        GOOD.replace("queue:\n", "queue:\n  pth: x\n")
        .replace("console: {type: log}", "console: {type: pager}")
        .replace("sinks: [console]", "sinks: [nowhere]")
    )
    path = write_config(text)
    found = problems(path)
    assert len(found) == 3
    lines = [int(p.split(":")[1]) for p in found]
    assert lines == sorted(lines)


def test_yaml_syntax_error_has_position(write_config: Callable[..., Path]) -> None:
    path = write_config("server:\n  port: [8000\nhooks: []\n")
    [problem] = problems(path)
    assert problem.startswith(f"{path}:3:") and "YAML syntax error" in problem


def test_wrong_types_and_durations(write_config: Callable[..., Path]) -> None:
    text = GOOD + "server: {port: eighty}\ndelivery: {max_age: forever}\n"
    path = write_config(text)
    found = problems(path)
    assert (
        f"{path}:19:16: server.port: "
        "Input should be a valid integer, unable to parse string as an integer" in found
    )
    assert any(
        p.startswith(f"{path}:20:21: delivery.max_age: Value error, expected a duration")
        for p in found
    )


def test_durations_accept_units(write_config: Callable[..., Path]) -> None:
    path = write_config(GOOD + "delivery: {max_age: 2h, backoff_initial: 500ms, backoff_max: 1m}\n")
    delivery = load_config(path, environ=ENV).app.delivery
    assert (delivery.max_age, delivery.backoff_initial, delivery.backoff_max) == (7200, 0.5, 60)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert problems(missing) == [f"{missing}:1:1: cannot read: No such file or directory"]


def test_literal_dollar_brace_escape(write_config: Callable[..., Path]) -> None:
    text = GOOD.replace("title_placeholder", "") + ""
    text = text.replace("    continue: true\n", "    continue: true\n    text: 'cost $${5}'\n")
    config = load_config(write_config(text), environ=ENV)
    assert config.routes.routes[0].text is not None
    assert config.routes.routes[0].text({}) == "cost ${5}"


def test_yaml_anchors_and_merge_keys(write_config: Callable[..., Path]) -> None:
    text = GOOD.replace(
        "sinks:\n  console: {type: log}\n",
        "x-defaults: &hook {type: webhook, url: 'http://127.0.0.1:9/a', timeout: 5}\n"
        "sinks:\n  console: {type: log}\n  other: {<<: *hook, timeout: 2}\n",
    )
    config = load_config(write_config(text), environ=ENV)
    other = config.sink_options["other"]
    assert (other.type, other.timeout) == ("webhook", 2)  # the explicit key wins


@pytest.mark.parametrize(
    "token", ["q8Zr/Jk2+Lm9xYp3Wv7tNa==", "abcdefghijklmnop%41", "abcdefghijklmnop#x"]
)
def test_token_with_characters_a_url_path_cannot_carry(
    write_config: Callable[..., Path], token: str
) -> None:
    path = write_config(GOOD)
    [problem] = problems(path, {"HOOK_TOKEN": token})
    assert problem.endswith("a hook token may only use letters, digits and . _ ~ + -")
    assert token not in problem
