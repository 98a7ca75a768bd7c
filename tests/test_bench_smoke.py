"""The benchmarks still run: ``bench/run.py --quick`` and ``make bench``'s own command,
``bench/compare.py --quick``, end to end, on loopback, in seconds.

Asserts correctness only (every event accepted, delivered exactly once, repeats recognised as
duplicates), never timings: those depend on the machine and belong in the bench's own output.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "run.py"
COMPARE = BENCH.parent / "compare.py"


def run_bench(command: list[str], timeout: float = 240) -> tuple[int, str]:
    """Run a bench command; its exit status and output."""
    # Its own process group: if it ever hangs, the servers it started go down with it.
    bench = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        out, _ = bench.communicate(timeout=timeout)
    finally:
        if bench.poll() is None:
            os.killpg(bench.pid, signal.SIGKILL)
            bench.wait()
    return bench.returncode, out


def test_quick_bench_delivers_every_event_exactly_once(tmp_path: Path) -> None:
    output = tmp_path / "quick.json"
    command = [sys.executable, str(BENCH), "--quick", "--output", str(output)]
    code, out = run_bench([*command, "--workdir", str(tmp_path)])
    assert code == 0, out
    results = json.loads(output.read_text())
    assert results["ok"] is True
    assert results["runs"], "no scenario ran"
    for run in results["runs"]:
        events = run["events"]
        assert run["problems"] == []
        assert run["ingest"]["accepted"] == events
        assert run["ingest"]["answered_duplicate"] == 0
        assert run["end_to_end"]["delivered"] == events
        assert run["duplicates"]["answered_duplicate"] == events
        assert run["duplicates"]["sink_received_total"] == events
        assert run["duplicates"]["delivered_twice"] == 0
        assert run["queue_after"]["deliveries_done"] == events


def test_quick_compare_measures_each_system_and_judges_each_target(tmp_path: Path) -> None:
    """The path of ``make bench QUICK=1``: the bare endpoint, the seed receiver (or the reason it
    is missing) and notirouter on SQLite, one webhook sink and enriched Teams + Mattermost."""
    output = tmp_path / "compare.json"
    # --stall 10: the seed may drop events on a busy machine; do not wait 30 s for them.
    command = [
        sys.executable,
        str(COMPARE),
        "--quick",
        "--only",
        "bare,seed,sqlite",
        "--stall",
        "10",
    ]
    code, out = run_bench([*command, "--output", str(output), "--workdir", str(tmp_path)])
    assert code == 0, out
    results = json.loads(output.read_text())
    assert results["ok"] is True
    rows = {row["id"]: row for row in results["rows"]}
    skipped = {s["group"]: s["reason"] for s in results["skipped"]}
    expected = {"bare", "notirouter-sqlite-webhook", "notirouter-sqlite-enriched"}
    assert expected <= set(rows), out
    assert "seed" in rows or skipped["seed"], out
    sizes = results["sizes"]
    for row in rows.values():
        assert row["problems"] == [], row["id"]
        assert row["ingest"]["accepted"] == (
            sizes["seed_burst"] if row["id"] == "seed" else sizes["burst"]
        )
        if row["id"] == "bare":
            continue
        if row["id"] == "seed":
            # Not durable: it drops an event whose API call times out, as on a busy machine.
            assert row["delivered"]["events"] > 0, "the seed posted nothing to Teams"
            continue
        # Every event reached every sink of its route exactly once, in the burst and steady.
        assert row["delivered"]["events"] == row["ingest"]["accepted"]
        assert row["steady"]["delivered"] == row["steady"]["events"]
        for name, sink in row["sinks"].items():
            total = row["ingest"]["accepted"] + row["steady"]["events"]
            assert (sink["unique"], sink["duplicates"], sink["unparsed"]) == (total, 0, 0), name
    assert set(rows["notirouter-sqlite-enriched"]["sinks"]) == {"teams", "mattermost"}
    # One API call per event: the enrichment really ran.
    enriched = rows["notirouter-sqlite-enriched"]
    assert (
        enriched["sinks"]["teams"]["api_requests"] == sizes["burst"] + enriched["steady"]["events"]
    )
    verdicts = {t["target"]: t["verdict"] for t in results["targets"]}
    assert any("40 % of the bare endpoint" in target for target in verdicts)
    assert set(verdicts.values()) <= {"PASS", "MISS", "n/a"}
    assert "| target (issue 15, item 2) | measured | result |" in out
