"""examples/events/: one event per Sekoia.io type and action, routed by the real ``route`` command.

Each example is run through ``notirouter route --json`` with config.example.yaml (what the
README tells a newcomer to try), and the route decision and the rendered log line are checked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from notirouter.plugins.sekoia.source import TYPED_EVENTS

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "examples" / "events"
CONFIG = ROOT / "config.example.yaml"

# file -> (the route that sends it, the title, a line of the text, a fact (name, value))
EXPECTED: dict[str, tuple[str, str, str, tuple[str, str]]] = {
    "alert-created.json": (
        "new-alerts",
        "New alert: ALEY4fqz8moo",
        "Details unavailable: not fetched from the Sekoia.io API.",
        ("Alert", "ALEY4fqz8moo"),
    ),
    "alert-updated-status.json": (
        "everything-else",
        "Alert updated: ALakbd8NXp9W",
        "Changed: status → Acknowledged.",
        ("Changed", "status → Acknowledged"),
    ),
    "alert-updated-urgency.json": (
        "everything-else",
        "Alert updated: ALakbd8NXp9W",
        "Changed: urgency → 80.",
        ("Changed", "urgency → 80"),
    ),
    "alert-updated-occurrences.json": (
        "everything-else",
        "Alert updated: ALakbd8NXp9W",
        "Changed: occurrences → 150.",
        ("Changed", "occurrences → 150"),
    ),
    "alert-deleted.json": (
        "everything-else",
        "Alert deleted: ALakbd8NXp9W",
        "The alert was deleted in Sekoia.io.",
        ("Alert", "ALakbd8NXp9W"),
    ),
    "alert-comment-created.json": (
        "everything-else",
        "New comment on alert: ALakbd8NXp9W",
        "comment",
        ("Author", "user c110d686-0b45-4ae7-b917-f15486d0f8c7"),
    ),
    "case-created.json": (
        "everything-else",
        "New case: Test new case",
        "Details unavailable: not fetched from the Sekoia.io API.",
        ("Mode", "manual"),
    ),
    "case-updated.json": (
        "everything-else",
        "Case updated: Test new case",
        "Changed: tags → phishing; description changed.",
        ("Priority", "medium"),
    ),
    "case-alerts-updated.json": (
        "everything-else",
        "Case alerts updated: Test new case",
        "1 alert added, 1 alert removed.",
        ("Added alerts", "1391c809-4630-45df-91ed-8154435b9f17"),
    ),
    "content-proposal.json": (
        "everything-else",
        "Report available: Weekly threat report",
        "A report is available in the Sekoia.io Intelligence Center.",
        ("name", "Weekly threat report"),
    ),
    "unknown-type.json": (
        "everything-else",
        "Sekoia.io rule-rate-limited created",
        "An event of a type notirouter has no dedicated message for.",
        ("Type", "rule-rate-limited"),
    ),
}


@pytest.fixture(scope="module")
def reports() -> dict[str, dict[str, Any]]:
    """``notirouter route -c config.example.yaml EVENT --json`` for every example, as the README
    shows it: one real process each, started together (the imports dominate each run)."""
    processes = {
        name: subprocess.Popen(
            [sys.executable, "-m", "notirouter", "route", "-c", str(CONFIG), name, "--json"],
            cwd=EVENTS,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in sorted(EXPECTED)
    }
    found = {}
    for name, process in processes.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, f"{name}: {err}"
        found[name] = json.loads(out)
    return found


def test_every_example_is_checked_and_every_file_is_an_example() -> None:
    assert sorted(p.name for p in EVENTS.glob("*.json")) == sorted(EXPECTED)


def test_every_sekoia_type_and_action_has_an_example() -> None:
    seen = set()
    for name in EXPECTED:
        event = json.loads((EVENTS / name).read_text(encoding="utf-8"))
        seen.add((event["type"], event["action"]))
    for event_type, (_, actions) in TYPED_EVENTS.items():
        for action in sorted(actions or {"created"}):
            assert (event_type, action) in seen, f"no example of {event_type}/{action}"
    assert any(t not in TYPED_EVENTS for t, _ in seen), "no example of an unknown type"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_route_sends_each_example_where_the_example_config_says(
    name: str, reports: dict[str, dict[str, Any]]
) -> None:
    event = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    assert event["metadata"]["version"] == 2  # the webhook shape Sekoia.io documents
    report = reports[name]
    expected_route, title, line, fact = EXPECTED[name]
    assert report["event"] == {"type": event["type"], "action": event["action"]}
    matched = [r["name"] for r in report["routes"] if r["matched"]]
    assert matched == [expected_route]
    (delivery,) = report["deliveries"]
    assert (delivery["route"], delivery["sink"], delivery["type"]) == (
        expected_route,
        "console",
        "log",
    )
    payload = delivery["payload"]
    assert payload["title"] == title
    assert line in payload["text"].splitlines()
    assert {"name": fact[0], "value": fact[1]} in payload["facts"]
