"""Silences: added by the CLI while a real ``serve`` runs, applied within a second, recorded.

Both backends: the CLI is its own process writing the queue while ``serve`` reads it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from notirouter.cli import main
from notirouter.config.models import QueueConfig
from notirouter.routing.silence_matchers import Matcher, MatcherError, matches_all
from tests.backends import Backend
from tests.conftest import TOKEN
from tests.loopback import LoopbackServer
from tests.older_queue import older_queue
from tests.serve_process import free_port, start_serve, wait_exit

# The silences are read again at most a second after a change; a little margin for the CLI.
APPLIES_WITHIN = 1.0


def config(backend: Backend, url: str) -> str:
    return f"""
hooks:
  - {{name: sekoia, token: {TOKEN}}}
queue: {backend.yaml()}
delivery: {{backoff_initial: 50ms, backoff_max: 200ms, lease: 30s}}
server: {{access_log: false}}
sinks:
  a: {{type: webhook, url: "{url}"}}
routes:
  - name: alerts
    match: {{type: alert}}
    sinks: [a]
"""


def alert(n: int, rule: str) -> dict[str, Any]:
    return {
        "type": "alert",
        "action": "created",
        "attributes": {"uuid": f"uuid-{n}", "short_id": f"AL{n}", "rule_name": rule},
        "metadata": {"uuid": f"event-{n}"},
    }


async def post(base: str, body: dict[str, Any]) -> str:
    async with (
        aiohttp.ClientSession() as client,
        client.post(f"{base}/hooks/{TOKEN}", json=body) as response,
    ):
        assert response.status == 202
        answer: dict[str, Any] = await response.json()
        return str(answer["id"])


async def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    """``notirouter ARGV`` as its own process, as an operator runs it."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "notirouter", *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def story(path: Path, event_id: str) -> dict[str, Any]:
    """``trace --json`` once the event is routed (bounded: 15 s)."""
    for _ in range(300):
        done = await cli("trace", event_id, "--json", "-c", str(path))
        if done.returncode == 0:
            found: dict[str, Any] = json.loads(done.stdout)
            if found["routing"] is not None:
                return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"event {event_id} was not routed")


def titles(loopback: LoopbackServer) -> list[str]:
    return [str(r.json()["title"]) for r in loopback.requests]


async def test_a_silence_added_while_serve_runs_applies_within_a_second_and_is_recorded(
    queue_backend: Backend, write_config: Callable[..., Path], loopback: LoopbackServer
) -> None:
    path = write_config(config(queue_backend, loopback.url))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = await start_serve(path, port, path.parent / "serve.log")
    try:
        await post(base, alert(1, "PowerShell encoded command"))
        await loopback.wait_for(1)
        added = await cli(
            "silence", "add", "-c", str(path),
            "--match", 'attributes.rule_name=~"PowerShell.*"',
            "--match", "type=alert",
            "--for", "2h",
            "--comment", "patching srv-web-01",
            "--author", "alice",
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        silence_id = added.stdout.strip()
        await asyncio.sleep(APPLIES_WITHIN)
        silenced = await post(base, alert(2, "PowerShell download cradle"))
        await post(base, alert(3, "Mimikatz"))  # not matched: goes as usual
        await loopback.wait_for(2)
        record = (await story(path, silenced))["routing"]["routes"][0]
        assert record["matched"] is True
        assert record["silence"]["id"] == silence_id
        assert record["silence"]["comment"] == "patching srv-web-01"
        async with aiohttp.ClientSession() as client, client.get(f"{base}/metrics") as response:
            metrics = await response.text()
        assert 'notirouter_silenced_total{route="alerts"} 1.0' in metrics

        listed = await cli("silence", "list", "--json", "-c", str(path))
        [shown] = json.loads(listed.stdout)
        assert shown["id"] == silence_id
        assert shown["state"] == "active"
        assert shown["author"] == "alice"
        assert shown["matchers"] == ['attributes.rule_name=~"PowerShell.*"', 'type="alert"']

        expired = await cli("silence", "expire", silence_id, "-c", str(path))
        assert expired.returncode == 0, expired.stderr
        await asyncio.sleep(APPLIES_WITHIN)
        await post(base, alert(4, "PowerShell again"))
        await loopback.wait_for(3)
        await asyncio.sleep(0.5)  # nothing else would arrive
    finally:
        process.terminate()
        await wait_exit(process, 10)
    assert titles(loopback) == ["New alert: AL1", "New alert: AL3", "New alert: AL4"]
    assert json.loads((await cli("silence", "list", "--json", "-c", str(path))).stdout) == []
    [kept] = json.loads((await cli("silence", "list", "--all", "--json", "-c", str(path))).stdout)
    assert kept["state"] == "expired"
    assert kept["expired_by_hand"] is True


async def test_silence_commands_refuse_bad_input_with_their_exit_codes(
    queue_backend: Backend, write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(write_config(config(queue_backend, "http://127.0.0.1:9")))
    assert await asyncio.to_thread(main, ["migrate", "-c", path]) == 0

    async def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = await asyncio.to_thread(main, [*argv, "-c", path])
        out, err = capsys.readouterr()
        return code, out, err

    code, _, err = await run(
        "silence", "add", "--match", "name=~(", "--for", "1h", "--comment", "x"
    )
    assert code == 2
    assert "--match: name=~: invalid regular expression '('" in err
    code, _, err = await run("silence", "add", "--match", "no op", "--for", "1h", "--comment", "x")
    assert code == 2
    assert "'no op' is not a matcher" in err
    code, _, err = await run("silence", "add", "--match", "a=b", "--for", "soon", "--comment", "x")
    assert (code, err.strip()) == (
        2,
        "notirouter: --for: 'soon' is not a duration such as 30m, 2h or 1d",
    )
    code, _, err = await run("silence", "expire", "0123456789abcdef")
    assert code == 3
    assert "no silence '0123456789abcdef'" in err
    code, out, _ = await run("silence", "add", "--match", "a=b", "--for", "1m", "--comment", "ok")
    assert code == 0
    code, out, _ = await run("silence", "list")
    header, row = out.splitlines()
    assert header.split("\t") == ["SILENCE", "STATE", "ENDS AT", "AUTHOR", "MATCHERS", "COMMENT"]
    assert row.split("\t")[1] == "active"
    assert row.split("\t")[4:] == ['a="b"', "ok"]


def test_prune_forgets_silences_only_after_retention(queue_backend: Backend) -> None:
    async def scenario() -> tuple[int, int, int]:
        queue = queue_backend.make()
        await queue.open()
        try:
            store = queue.silences()
            silence = await store.add((("a", "=", "b"),), ends_at=1e10, comment="c", author="d")
            await store.expire(silence.id)
            kept = await store.prune(3600.0)
            listed = len(await store.listing(include_expired=True))
            return kept, listed, await store.prune(0.0)
        finally:
            await queue.close()

    assert asyncio.run(scenario()) == (0, 1, 1)


ENRICHED = {
    "type": "alert",
    "alert": {"rule": {"name": "PowerShell encoded"}, "urgency": {"current_value": 80}},
    "community": "acme",
    "tags": ["a", "b"],
}


@pytest.mark.parametrize(
    ("matcher", "expected"),
    [
        ('alert.rule.name=~"PowerShell.*"', True),
        ('alert.rule.name=~"Power"', False),  # the whole value must match
        ('alert.rule.name!~"Mimi.*"', True),
        ("alert.urgency.current_value=80", True),
        ("alert.urgency.current_value!=80", False),
        ("community=acme", True),
        ("tags.1=b", True),
        ('missing.path=""', True),  # a missing variable reads as empty
        ("missing.path!=x", True),
        ('type = "alert"', True),
        (r'alert.rule.name="PowerShell \"x\""', False),
    ],
)
def test_matchers_on_event_and_enrichment_variables(matcher: str, expected: bool) -> None:
    assert matches_all([Matcher.parse(matcher)], ENRICHED) is expected


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("alert.rule.name=~[", "invalid regular expression '['"),
        ('a="unclosed', "the quoted value is not closed"),
        ("=x", "is not a matcher"),
        ("a==b", None),  # the value is "=b": allowed
    ],
)
def test_matchers_are_validated_when_added(text: str, error: str | None) -> None:
    if error is None:
        assert Matcher.parse(text).value == "=b"
        return
    with pytest.raises(MatcherError, match=error.replace("[", r"\[")):
        Matcher.parse(text)


async def test_the_dry_run_says_which_silence_would_apply(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = str(write_config(config(queue_backend, "http://127.0.0.1:9")))
    event = tmp_path / "event.json"
    event.write_text(json.dumps(alert(1, "PowerShell encoded")))

    async def run(*argv: str) -> tuple[int, str]:
        capsys.readouterr()
        code = await asyncio.to_thread(main, [*argv, "-c", path])
        return code, capsys.readouterr().out

    assert (await run("migrate"))[0] == 0
    code, out = await run(
        "silence", "add", "--match", 'attributes.rule_name=~"Power.*"', "--for", "1h",
        "--comment", "patching",
    )  # fmt: skip
    assert code == 0
    silence_id = out.strip()
    code, out = await run("route", str(event), "--json")
    report = json.loads(out)
    assert report["routes"][0]["silence"]["id"] == silence_id
    assert report["silences"] == "read from the queue"
    assert report["deliveries"] == []
    code, out = await run("route", str(event))
    assert f"silenced by {silence_id} until " in out
    assert ": patching" in out
    assert "no sink would be called" in out


def test_without_its_queue_the_dry_run_still_answers_and_says_so(
    write_config: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backend = Backend("sqlite", QueueConfig(path=str(tmp_path / "absent.db")))
    path = str(write_config(config(backend, "http://127.0.0.1:9")))
    event = tmp_path / "event.json"
    event.write_text(json.dumps(alert(1, "PowerShell encoded")))
    assert main(["route", str(event), "--json", "-c", path]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["silences"].startswith("not read: ")
    assert [d["sink"] for d in report["deliveries"]] == ["a"]
    assert not (tmp_path / "absent.db").exists()  # a dry run creates no queue


async def test_a_queue_from_before_silences_is_upgraded_and_keeps_its_events(
    queue_backend: Backend,
) -> None:
    # The schema just before silences (SQLite 7, PostgreSQL 6), as an older notirouter left it.
    before = 6 if queue_backend.name == "sqlite" else 5
    await older_queue(queue_backend, before, event_id="e" * 32)
    queue = queue_backend.make()
    await queue.open()
    try:
        added = await queue.silences().add(
            (("a", "=", "b"),), ends_at=1e10, comment="c", author="d"
        )
        assert [s.id for s in await queue.silences().listing()] == [added.id]
        assert (await queue.counts())["events_pending"] == 1
    finally:
        await queue.close()
