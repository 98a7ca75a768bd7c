"""The human-readable summary of a bench results document, and medians over repeated runs."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

Getter = Callable[[dict[str, Any]], Any]


def _get(*keys: str) -> Getter:
    def get(run: dict[str, Any]) -> Any:
        value: Any = run
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    return get


# (heading, alignment, how to read it from a run, key in the medians document)
METRICS: tuple[tuple[str, str, Getter, str], ...] = (
    ("ingest/s", ">", _get("ingest", "events_per_s"), "ingest_per_s"),
    ("p50 ms", ">", _get("ingest", "latency", "p50_ms"), "ingest_p50_ms"),
    ("p99 ms", ">", _get("ingest", "latency", "p99_ms"), "ingest_p99_ms"),
    ("e2e/s", ">", _get("end_to_end", "events_per_s"), "end_to_end_per_s"),
    ("deliv p50", ">", _get("end_to_end", "delivery_latency", "p50_ms"), "delivery_p50_ms"),
    ("deliv p99", ">", _get("end_to_end", "delivery_latency", "p99_ms"), "delivery_p99_ms"),
    ("dup/s", ">", _get("duplicates", "events_per_s"), "duplicates_per_s"),
    ("dup p99", ">", _get("duplicates", "latency", "p99_ms"), "duplicates_p99_ms"),
    ("CPU ms/ev", ">", _get("end_to_end", "serve_cpu_ms_per_event"), "serve_cpu_ms_per_event"),
)
NOTES = (
    "ingest: 202/s and request latency while routing and delivery run in the same server",
    "e2e: first POST to last notification at the sink; deliv: POST sent -> notification received",
    "dup: the same events again, all answered duplicate; CPU: serve process, ingest + delivery",
)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"
    return str(value)


def _median(values: list[Any]) -> float | None:
    numbers = [v for v in values if isinstance(v, int | float)]
    return round(statistics.median(numbers), 2) if numbers else None


def medians(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (scenario, concurrency): the median of every metric over its repeats."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["scenario"], run["concurrency"]), []).append(run)
    summary = []
    for (scenario, concurrency), group in groups.items():
        entry: dict[str, Any] = {
            "scenario": scenario,
            "concurrency": concurrency,
            "events": group[0]["events"],
            "runs": len(group),
            "ok": all(run["ok"] for run in group),
        }
        entry.update({key: _median([get(run) for run in group]) for _, _, get, key in METRICS})
        summary.append(entry)
    return summary


def _table(title: str, rows: list[list[str]]) -> None:
    headings = ["scenario", "C", "events", "run"] + [m[0] for m in METRICS] + ["ok"]
    aligns = ["<", ">", ">", ">"] + [m[1] for m in METRICS] + ["<"]
    cells = [headings, *rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headings))]
    print(f"\n{title}")
    for row in cells:
        line = "  ".join(
            f"{cell:{align}{width}}" for cell, align, width in zip(row, aligns, widths, strict=True)
        )
        print(line.rstrip())


def print_table(results: dict[str, Any]) -> None:
    """Machine line, one row per run (and medians when repeated), then problems and skips."""
    machine = results["machine"]
    settings = results["settings"]
    print(
        f"\n{machine['cpu_count']} CPUs ({machine['cpu_model']}), Python {machine['python']}, "
        f"SQLite {machine['sqlite']} on {machine['queue_filesystem']}; notirouter log level "
        f"{settings['log_level']}, access log {'on' if settings['access_log'] else 'off'}; "
        f"load average at start {machine['load_average_1m']}"
    )
    runs = results["runs"]
    _table(
        "runs:",
        [
            [run["scenario"], _fmt(run["concurrency"]), _fmt(run["events"]), _fmt(run["repeat"])]
            + [_fmt(get(run)) for _, _, get, _ in METRICS]
            + ["yes" if run["ok"] else "NO"]
            for run in runs
        ],
    )
    if settings["repeat"] > 1:
        _table(
            f"medians of {settings['repeat']} runs:",
            [
                [m["scenario"], _fmt(m["concurrency"]), _fmt(m["events"]), "med"]
                + [_fmt(m[key]) for _, _, _, key in METRICS]
                + ["yes" if m["ok"] else "NO"]
                for m in results["medians"]
            ],
        )
    print("\n" + "\n".join(NOTES))
    for run in runs:
        for problem in run.get("problems", []):
            print(f"PROBLEM {run['scenario']} C={run['concurrency']}: {problem}")
    for skipped in results["skipped"]:
        print(f"skipped {skipped['scenario']}: {skipped['reason']}")
