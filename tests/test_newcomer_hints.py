"""What a newcomer trips over, through the real command line: each problem says what to do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import TOKEN

EVENT = {
    "type": "alert",
    "action": "created",
    "attributes": {"uuid": "5696845f-9ecf-4431-9f0f-48ee0ee2eff1", "short_id": "ALEY4fqz8moo"},
    "metadata": {"version": 2, "created_at": "2022-01-14T15:06:57+00:00"},
}


def notirouter(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The installed command, as a user runs it (no config in the environment unless given)."""
    environ = {k: v for k, v in os.environ.items() if k != "NOTIROUTER_CONFIG"}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "notirouter", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def test_a_missing_default_config_suggests_the_example_and_the_variable(tmp_path: Path) -> None:
    result = notirouter("check", cwd=tmp_path)
    assert result.returncode == 1
    assert "notirouter.yaml:1:1: cannot read: No such file or directory" in result.stderr
    assert "-c config.example.yaml" in result.stderr
    assert "NOTIROUTER_CONFIG" in result.stderr


def test_a_missing_config_named_by_the_variable_gets_the_hint_too(tmp_path: Path) -> None:
    missing = tmp_path / "etc" / "notirouter.yaml"
    result = notirouter(
        "route", "event.json", cwd=tmp_path, env={"NOTIROUTER_CONFIG": str(missing)}
    )
    assert result.returncode == 1
    assert f"there is no config file at {missing}" in result.stderr
    assert "-c config.example.yaml" in result.stderr


def test_an_invalid_config_that_exists_gets_no_missing_file_hint(tmp_path: Path) -> None:
    write(tmp_path / "notirouter.yaml", "sinks: {console: {type: nope}}\n")
    result = notirouter("check", cwd=tmp_path)
    assert result.returncode == 1
    assert "unknown sink type 'nope'" in result.stderr
    assert "config.example.yaml" not in result.stderr


def _enriching_config(tmp_path: Path) -> Path:
    return write(
        tmp_path / "notirouter.yaml",
        f"""
        hooks: [{{name: sekoia, token: {TOKEN}}}]
        queue: {{path: "{tmp_path / "q.db"}"}}
        enrichers:
          sekoia:
            type: sekoia
            api_key: dry-run-key-never-sent
            base_url: http://127.0.0.1:9/api
            app_url: https://app.sekoia.io
        sinks:
          console: {{type: log}}
        routes:
          - name: urgent
            match: {{type: alert}}
            enrich: [sekoia]
            when: "alert.urgency.current_value >= 70"
            sinks: [console]
          - name: short-id-known
            match: {{type: alert}}
            when: "attributes.short_id == 'nope'"
            sinks: [console]
        """,
    )


def test_route_without_enrich_says_a_when_needs_enrichment(tmp_path: Path) -> None:
    config = _enriching_config(tmp_path)
    (tmp_path / "event.json").write_text(json.dumps(EVENT))
    result = notirouter("route", "-c", str(config), "event.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    urgent = lines.index(next(line for line in lines if "urgent:" in line))
    assert lines[urgent].startswith("  no    urgent: when failed")
    hint = lines[urgent + 1]
    assert "hint: this when needs enrichment (enrich: sekoia)" in hint
    assert "--enrich" in hint
    # A route without enrichers gets no such hint: its when has all it reads.
    assert sum("hint:" in line for line in lines) == 1

    report = json.loads(
        notirouter("route", "-c", str(config), "event.json", "--json", cwd=tmp_path).stdout
    )
    by_name = {route["name"]: route for route in report["routes"]}
    assert "--enrich" in by_name["urgent"]["hint"]
    assert "hint" not in by_name["short-id-known"]


def test_an_error_in_match_does_not_hide_the_routes_other_errors(tmp_path: Path) -> None:
    config = write(
        tmp_path / "notirouter.yaml",
        f"""
        hooks: [{{name: sekoia, token: {TOKEN}}}]
        sinks:
          console: {{type: log}}
        routes:
          - name: urgent
            match: {{type: alert, acton: created}}
            when: "alert.urgency >= "
            title: "{{{{ alert.title"
            sinks: [consol]
            enrich: [sekoia]
          - name: typed
            match: 5
            sinks: [nowhere]
        """,
    )
    result = notirouter("check", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 1
    problems = result.stderr.splitlines()
    path = str(config)
    assert f"{path}:6:26: routes.0.match: unknown key 'acton'" in problems
    assert any(p.startswith(f"{path}:7:11: routes.urgent.when: does not compile") for p in problems)
    assert any(p.startswith(f"{path}:8:12: routes.urgent.title:") for p in problems)
    assert f"{path}:9:13: routes.urgent: unknown sink 'consol' (defined: console)" in problems
    assert f"{path}:10:14: routes.urgent: unknown enricher 'sekoia' (defined: none)" in problems
    assert any(p.startswith(f"{path}:12:12: routes.1.match:") for p in problems)
    assert f"{path}:13:13: routes.typed: unknown sink 'nowhere' (defined: console)" in problems
    assert problems[-1] == f"notirouter: 7 problems in {path}"
