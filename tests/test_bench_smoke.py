"""The benchmark still runs: ``bench/run.py --quick`` end to end, on loopback, in seconds.

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


def test_quick_bench_delivers_every_event_exactly_once(tmp_path: Path) -> None:
    output = tmp_path / "quick.json"
    # Its own process group: if it ever hangs, the servers it started go down with it.
    bench = subprocess.Popen(
        [
            sys.executable,
            str(BENCH),
            "--quick",
            "--output",
            str(output),
            "--workdir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = bench.communicate(timeout=120)
    finally:
        if bench.poll() is None:
            os.killpg(bench.pid, signal.SIGKILL)
            bench.wait()
    assert bench.returncode == 0, out
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
