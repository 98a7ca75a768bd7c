"""The command line as an operator uses it: output, exit codes, nothing secret printed."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from notirouter.cli import build_parser, main
from notirouter.queue.sqlite.queue import SqliteQueue
from tests.conftest import TOKEN
from tests.loopback import LoopbackServer, Reply

EVENT = {
    "type": "alert",
    "action": "created",
    "attributes": {"uuid": "5696845f-9ecf-4431-9f0f-48ee0ee2eff1", "short_id": "ALEY4fqz8moo"},
    "metadata": {"version": 2, "created_at": "2022-01-14T15:06:57+00:00"},
}
SECRET_PATH = "hook-secret-path-value"


async def run(argv: list[str]) -> int:
    """The CLI runs its own event loop: call it from a thread inside async tests."""
    return await asyncio.to_thread(main, argv)


@pytest.fixture
def event_file(tmp_path: Path) -> Path:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(EVENT))
    return path


@pytest.fixture
def config_for(tmp_path: Path, write_config: Callable[..., Path]) -> Callable[[str], Path]:
    def build(sink_url: str) -> Path:
        return write_config(
            f"""
            hooks: [{{name: sekoia, token: {TOKEN}}}]
            queue: {{path: "{tmp_path / "q.db"}"}}
            sinks:
              forward: {{type: webhook, url: "{sink_url}/{SECRET_PATH}"}}
              console: {{type: log}}
            routes:
              - name: new-alerts
                match: {{type: alert, action: created}}
                title: "New alert {{{{ attributes.short_id }}}}"
                sinks: [forward, console]
                continue: true
              - name: cases-only
                match: {{type: case}}
                sinks: [console]
              - name: quiet
                when: "attributes.short_id == 'nope'"
                sinks: [console]
            """
        )

    return build


def all_commands() -> list[list[str]]:
    commands = [[]]
    parser = build_parser()
    for action in parser._subparsers._group_actions:  # type: ignore[union-attr]
        for name, sub in action.choices.items():  # type: ignore[union-attr]
            commands.append([name])
            for inner in (
                getattr(sub, "_subparsers", None)._group_actions if sub._subparsers else []
            ):  # type: ignore[union-attr]
                commands.extend([name, leaf] for leaf in inner.choices)
    return commands


@pytest.mark.parametrize("command", all_commands(), ids=lambda c: " ".join(c) or "notirouter")
def test_help_everywhere(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("usage: notirouter")


def test_python_dash_m_and_no_command() -> None:
    result = subprocess.run([sys.executable, "-m", "notirouter"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "usage: notirouter" in result.stderr


def test_check_ok_prints_a_summary(
    config_for: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = config_for("http://127.0.0.1:9")
    assert main(["check", "-c", str(path)]) == 0
    assert capsys.readouterr().out == (
        f"{path}: OK: 1 hook, 2 sinks, 0 enrichers, 3 routes, "
        f"queue sqlite at {path.parent / 'q.db'}\n"
    )


def test_check_reports_every_problem_and_no_secret(
    write_config: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SINK_URL", "https://hooks.example/very-secret-token")
    monkeypatch.setenv("SHORT_TOKEN", "tiny-secret")
    path = write_config(
        """
        hooks: [{name: h, token: "${SHORT_TOKEN}"}]
        sinks:
          a: {type: webhook, url: "${SINK_URL}", retries: 3}
        routes: [{name: r, sinks: [b]}]
        """
    )
    assert main(["check", "-c", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:1:" in err and f"{path}:3:" in err and f"{path}:4:" in err
    assert "unknown key 'retries'" in err and "unknown sink 'b'" in err
    assert "notirouter: 3 problems in" in err
    assert "very-secret-token" not in err and "tiny-secret" not in err


def test_config_path_from_environment(
    config_for: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("NOTIROUTER_CONFIG", str(config_for("http://127.0.0.1:9")))
    assert main(["check"]) == 0
    assert ": OK:" in capsys.readouterr().out


def test_missing_default_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("NOTIROUTER_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["check"]) == 1
    assert "notirouter.yaml:1:1: cannot read: No such file or directory" in capsys.readouterr().err


async def test_route_is_a_dry_run_that_explains(
    loopback: LoopbackServer,
    config_for: Callable[[str], Path],
    event_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = config_for(loopback.url)
    assert await run(["route", "-c", str(path), str(event_file)]) == 0
    out = capsys.readouterr().out
    assert "MATCH new-alerts: type and action match" in out
    assert "no    cases-only: type 'alert' not in ['case']" in out
    assert "no    quiet: when is false: attributes.short_id == 'nope'" in out
    assert "sink forward (webhook) via route new-alerts:" in out
    assert "sink console (log) via route new-alerts:" in out
    assert '"title": "New alert ALEY4fqz8moo"' in out
    assert SECRET_PATH not in out
    assert loopback.requests == []


async def test_route_json(
    loopback: LoopbackServer,
    config_for: Callable[[str], Path],
    event_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert await run(["route", "-c", str(config_for(loopback.url)), str(event_file), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["matched"]) for r in report["routes"]] == [
        ("new-alerts", True),
        ("cases-only", False),
        ("quiet", False),
    ]
    assert [(d["sink"], d["type"]) for d in report["deliveries"]] == [
        ("forward", "webhook"),
        ("console", "log"),
    ]
    assert report["deliveries"][0]["payload"]["event"]["attributes"]["short_id"] == "ALEY4fqz8moo"
    assert loopback.requests == []


async def test_send_delivers_now_and_reports(
    loopback: LoopbackServer,
    config_for: Callable[[str], Path],
    event_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert await run(["send", "-c", str(config_for(loopback.url)), str(event_file)]) == 0
    out = capsys.readouterr().out
    log_line = json.loads(out.splitlines()[0])  # the log sink: one JSON line on stdout
    assert (log_line["sink"], log_line["title"]) == ("console", "New alert ALEY4fqz8moo")
    assert "forward (route new-alerts): delivered: HTTP 200" in out
    assert "console (route new-alerts): delivered" in out
    assert loopback.requests[0].json()["title"] == "New alert ALEY4fqz8moo"


async def test_send_exit_code_when_a_sink_refuses(
    loopback: LoopbackServer,
    config_for: Callable[[str], Path],
    event_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    loopback.reply(Reply(403, "forbidden"))
    assert await run(["send", "-c", str(config_for(loopback.url)), str(event_file)]) == 4
    out = capsys.readouterr().out
    assert "forward (route new-alerts): permanent: HTTP 403: forbidden" in out
    assert SECRET_PATH not in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{nope", "malformed JSON"),
        ("[]", "must be a JSON object"),
        ('{"type": "alert"}', "invalid event"),
    ],
)
def test_invalid_event_file_exit_3(
    tmp_path: Path,
    config_for: Callable[[str], Path],
    capsys: pytest.CaptureFixture[str],
    content: str,
    message: str,
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert main(["route", "-c", str(config_for("http://127.0.0.1:9")), str(bad)]) == 3
    assert message in capsys.readouterr().err


def test_unreadable_event_file_exit_3(
    tmp_path: Path, config_for: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["send", "-c", str(config_for("http://127.0.0.1:9")), str(tmp_path / "none.json")])
        == 3
    )
    assert "cannot read" in capsys.readouterr().err


async def test_test_sink_sends_a_labelled_notification(
    loopback: LoopbackServer, config_for: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = config_for(loopback.url)
    assert await run(["test-sink", "-c", str(path), "forward"]) == 0
    assert capsys.readouterr().out == "forward: delivered: HTTP 200\n"
    assert loopback.requests[0].json()["title"] == "notirouter test notification"
    assert await run(["test-sink", "-c", str(path), "nope"]) == 3
    assert "no sink named 'nope' (defined: console, forward)" in capsys.readouterr().err
    loopback.reply(Reply(500))
    assert await run(["test-sink", "-c", str(path), "forward"]) == 4


def test_serve_refuses_an_invalid_config(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config("sinks: {a: {type: nothing}}\n")
    assert main(["serve", "-c", str(path), "--port", "0"]) == 1
    assert f"{path}:1:19: sinks.a: unknown sink type 'nothing'" in capsys.readouterr().err


def test_serve_fails_clearly_when_the_queue_cannot_open(
    tmp_path: Path, write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    path = write_config(f'queue: {{path: "{blocker}/sub/q.db"}}\nsinks: {{a: {{type: log}}}}\n')
    assert main(["serve", "-c", str(path), "--port", "0"]) == 1
    assert "cannot open the queue" in capsys.readouterr().err


def test_dead_commands_on_an_empty_queue(
    config_for: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(config_for("http://127.0.0.1:9"))
    assert main(["dead", "list", "-c", path]) == 1  # no queue yet: say so, create nothing
    assert "no queue file at" in capsys.readouterr().err
    assert main(["check", "-c", path]) == 0
    asyncio.run(_create_queue(Path(path).parent / "q.db"))
    assert main(["dead", "list", "-c", path]) == 0
    assert capsys.readouterr().out.endswith("no dead letters\n")
    assert main(["dead", "show", "-c", path, "7"]) == 3
    assert main(["dead", "replay", "-c", path]) == 2
    assert main(["dead", "purge", "-c", path, "--older-than", "7d"]) == 0
    assert "0 dead letters deleted" in capsys.readouterr().out
    assert main(["dead"]) == 2


async def _create_queue(path: Path) -> None:
    queue = SqliteQueue(path)
    await queue.open()
    await queue.close()


def test_dead_commands_need_only_the_queue_settings(
    tmp_path: Path, write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(
        """
        queue: {path: ./var/q.db}
        sinks:
          teams: {type: webhook, url: "${TEAMS_URL_NOT_SET_HERE}"}
        """
    )
    asyncio.run(_create_queue(tmp_path / "var" / "q.db"))  # relative to the config file
    assert main(["dead", "list", "-c", str(path)]) == 0
    assert capsys.readouterr().out == "no dead letters\n"


async def test_secrets_echoed_by_a_service_never_reach_send_or_dead_letters(
    tmp_path: Path,
    write_config: Callable[..., Path],
    loopback: LoopbackServer,
    event_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def echo(request: Any, body: bytes) -> Any:
        from aiohttp import web

        return web.Response(status=401, text=f"bad credentials: {request.headers['Authorization']}")

    loopback.handler = echo
    path = write_config(
        f"""
        queue: {{path: "{tmp_path / "q.db"}"}}
        sinks:
          fwd:
            type: webhook
            url: "{loopback.url}/hooks/abcdefghijklmnopqrstuvwxyz"
            headers: {{Authorization: "Bearer s3cr3t-api-key-42"}}
        routes: [{{name: all, sinks: [fwd]}}]
        """
    )
    assert await run(["send", "-c", str(path), str(event_file)]) == 4
    out = capsys.readouterr().out
    assert "fwd (route all): permanent: HTTP 401: bad credentials: ***" in out
    assert "s3cr3t-api-key-42" not in out


def test_a_sink_timeout_longer_than_the_lease_is_a_config_error(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(
        """
        delivery: {lease: 30s}
        sinks:
          slow: {type: webhook, url: "http://127.0.0.1:9/x", timeout: 25}
        """
    )
    assert main(["check", "-c", str(path)]) == 1
    assert (
        "sinks.slow: an attempt may last 30s (timeout and grace), not less than delivery.lease"
        in capsys.readouterr().err
    )


async def test_dead_list_show_and_replay_failed_events(
    tmp_path: Path, write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(f'queue: {{path: "{tmp_path / "q.db"}"}}\n')
    queue = SqliteQueue(tmp_path / "q.db")
    await queue.open()
    stored = await queue.enqueue(
        hook="sekoia", source="gone", dedupe_key="k", body=b'{"type": "x"}'
    )
    [event] = await queue.claim_events(1, 30)
    await queue.retry_event(event, 0, "cannot parse with source 'gone'", dead=True)
    await queue.close()
    assert await run(["dead", "list", "-c", str(path)]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.startswith("EVENT NOT ROUTED\t")
    assert row.startswith(f"{stored.id}\t")
    assert row.endswith("\tsekoia\t1\tcannot parse with source 'gone'")
    assert await run(["dead", "show", "-c", str(path), stored.id]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["kind"], shown["event"]) == ("event", {"type": "x"})
    assert await run(["dead", "replay", "-c", str(path), stored.id]) == 0
    assert "1 dead letter queued again" in capsys.readouterr().out
    assert await run(["dead", "show", "-c", str(path), "not-an-id"]) == 2
