"""The benchmark still runs: ``bench/run.py --quick`` end to end, on loopback, in seconds.

Asserts correctness only (every event accepted, delivered exactly once, repeats recognised as
duplicates), never timings: those depend on the machine and belong in the bench's own output.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "run.py"


def test_quick_bench_delivers_every_event_exactly_once(tmp_path: Path) -> None:
    output = tmp_path / "quick.json"
    finished = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--quick",
            "--output",
            str(output),
            "--workdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
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
