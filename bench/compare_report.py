"""The table of ``bench/compare.py``: each system's numbers, ours as ratios to the references,
and PASS/MISS against each target of issue 15's item 2."""

# ruff: noqa: RUF001 -- the multiplication sign of the ratios, as in the issue

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Row = dict[str, Any]
VARIANTS = (("sqlite", "SQLite"), ("postgres", "PostgreSQL"), ("postgres-multi", "PostgreSQL ×N"))


def _get(row: Row | None, *keys: str) -> Any:
    value: Any = row
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def ingest(row: Row | None) -> float | None:
    """Burst ingest, requests/s."""
    return _get(row, "ingest", "requests_per_s")


def delivered(row: Row | None) -> float | None:
    """Burst delivered events/s (to every sink of the route)."""
    return _get(row, "delivered", "events_per_s")


def steady(row: Row | None, which: str) -> float | None:
    """Steady end-to-end latency, ``p50_ms`` or ``p99_ms``."""
    return _get(row, "steady", "latency", which)


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def _n(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    if value < 10:  # the seed's few events/s: one decimal, so 0.6 does not read as 1
        return f"{value:.1f}"
    return f"{value:,.{digits}f}"


def _ms(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _x(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f} %"


def _rows(results: dict[str, Any]) -> dict[str, Row]:
    return {row["id"]: row for row in results["rows"]}


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of item 2, per backend where it applies: measured, wanted, PASS/MISS."""
    rows = _rows(results)
    bare, am, seed = rows.get("bare"), rows.get("alertmanager"), rows.get("seed")
    found: list[dict[str, Any]] = []

    def add(target: str, measured: str, ok: bool | None, why: str = "") -> None:
        found.append({"target": target, "measured": measured, "verdict": _verdict(ok), "note": why})

    def check(value: float | None, test: Callable[[float], bool]) -> bool | None:
        return None if value is None else test(value)

    for key, name in VARIANTS:
        web = rows.get(f"notirouter-{key}-webhook")
        rich = rows.get(f"notirouter-{key}-enriched")
        if web is None and rich is None:
            continue
        x_am = _ratio(delivered(web), delivered(am))
        add(
            f"{name}: one webhook sink, delivered ≥ 1.0× Alertmanager",
            f"{_x(x_am)} ({_n(delivered(web))} vs {_n(delivered(am))} ev/s)",
            check(x_am, lambda r: r >= 1.0),
            "" if am else "Alertmanager reference missing",
        )
        x_seed = _ratio(delivered(rich), delivered(seed))
        add(
            f"{name}: enrichment + Teams + Mattermost ≥ 1,000 delivered ev/s (≥ 25× seed)",
            f"{_n(delivered(rich))} ev/s, {_x(x_seed)} seed",
            check(delivered(rich), lambda r: r >= 1000),
        )
        share = _ratio(ingest(web), ingest(bare))
        add(
            f"{name}: durable ingest ≥ 40 % of the bare endpoint",
            f"{_pct(share)} ({_n(ingest(web))} vs {_n(ingest(bare))} req/s)",
            check(share, lambda r: r >= 0.40),
            "" if bare else "bare reference missing",
        )
        for work, row in (("webhook", web), ("enriched", rich)):
            p50, p99 = steady(row, "p50_ms"), steady(row, "p99_ms")
            add(
                f"{name}, {work}: p50 ≤ 10 ms and p99 ≤ 50 ms at 200 ev/s",
                f"{_ms(p50)} / {_ms(p99)} ms",
                None if p50 is None or p99 is None else p50 <= 10 and p99 <= 50,
            )
    backlog = rows.get("notirouter-sqlite-backlog")
    if backlog is not None:
        rss = backlog.get("peak_rss_mb")
        queued = backlog.get("queued_for_down_sink")
        add(
            "SQLite: peak RSS ≤ 150 MB with the backlog queued behind a sink that is down",
            f"{_n(rss)} MB, {_n(queued)} deliveries queued",
            check(rss, lambda r: r <= 150),
        )
        p50, p99 = steady(backlog, "p50_ms"), steady(backlog, "p99_ms")
        base = rows.get("notirouter-sqlite-webhook")
        add(
            "SQLite: meanwhile the sink that is up keeps p50 ≤ 10 ms, p99 ≤ 50 ms at 200 ev/s",
            f"{_ms(p50)} / {_ms(p99)} ms (without backlog: "
            f"{_ms(steady(base, 'p50_ms'))} / {_ms(steady(base, 'p99_ms'))})",
            None if p50 is None or p99 is None else p50 <= 10 and p99 <= 50,
        )
    many = rows.get("notirouter-sqlite-webhook-many-routes")
    if many is not None:
        base = rows.get("notirouter-sqlite-webhook")
        kept = _ratio(delivered(many), delivered(base))
        add(
            f"SQLite: {many.get('routes', 0):,} routes cost ≤ 20 % of the throughput of "
            f"{_get(base, 'routes') or 10}",
            f"{_x(kept)} ({_n(delivered(many))} vs {_n(delivered(base))} ev/s)",
            check(kept, lambda r: r >= 0.8),
        )
    large = rows.get("notirouter-sqlite-enriched-large-alert")
    if large is not None:
        base = rows.get("notirouter-sqlite-enriched")
        kept = _ratio(delivered(large), delivered(base))
        add(
            f"SQLite: a {large.get('alert_bytes', 0) // 1024} KB enriched alert costs ≤ 20 % "
            f"against {(_get(base, 'alert_bytes') or 1024) // 1024} KB",
            f"{_x(kept)} ({_n(delivered(large))} vs {_n(delivered(base))} ev/s)",
            check(kept, lambda r: r >= 0.8),
        )
    return found


def _versus(row: Row, rows: dict[str, Row]) -> str:
    """A notirouter row's ratios: ingest to bare, delivered to its reference."""
    parts = []
    share = _ratio(ingest(row), ingest(rows.get("bare")))
    if share is not None:
        parts.append(f"ingest {_pct(share)} of bare")
    reference = {"webhook": "alertmanager", "enriched": "seed"}.get(row.get("work", ""))
    if reference:
        x = _ratio(delivered(row), delivered(rows.get(reference)))
        if x is not None:
            parts.append(f"{_x(x)} {'Alertmanager' if reference == 'alertmanager' else 'seed'}")
    return ", ".join(parts) or "—"


def _markdown(headings: list[str], body: list[list[str]]) -> None:
    print("| " + " | ".join(headings) + " |")
    print("|" + "---|" * len(headings))
    for cells in body:
        print("| " + " | ".join(cells) + " |")


def print_report(results: dict[str, Any]) -> None:
    """Machine line, the systems table, the targets table, problems and skips (Markdown)."""
    machine = results["machine"]
    sizes = results["sizes"]
    rows = _rows(results)
    print(
        f"\n{machine['cpu_count']} CPUs ({machine['cpu_model']}), Python {machine['python']}, "
        f"SQLite {machine['sqlite']} on {machine['queue_filesystem']}; load average "
        f"{machine['load_average_1m']} at start, {machine['load_average_end']} at end. "
        f"Burst {sizes['burst']:,} events with {sizes['clients']} clients, then "
        f"{sizes['rate']:g} ev/s for {sizes['steady_s']:g} s.\n"
    )
    _markdown(
        [
            "system",
            "ingest req/s",
            "delivered ev/s",
            f"p50 / p99 ms at {sizes['rate']:g} ev/s",
            "peak RSS",
            "vs references",
        ],
        [
            [
                row["label"],
                _n(ingest(row)),
                _n(delivered(row)),
                "—"
                if steady(row, "p50_ms") is None
                else f"{_ms(steady(row, 'p50_ms'))} / {_ms(steady(row, 'p99_ms'))}",
                "—" if row.get("peak_rss_mb") is None else f"{row['peak_rss_mb']:.0f} MB",
                _versus(row, rows) if row["id"].startswith("notirouter") else "reference",
            ]
            for row in results["rows"]
        ],
    )
    print()
    _markdown(
        ["target (issue 15, item 2)", "measured", "result"],
        [[t["target"], t["measured"] + (f" ({t['note']})" if t["note"] else ""), t["verdict"]]
         for t in results["targets"]],
    )  # fmt: skip
    if sizes["burst"] < 1000:
        print("\n(quick run: too few events for the numbers to mean anything)")
    for row in results["rows"]:
        for lost in row.get("lost", []):
            print(f"LOST by {row['id']} (not durable): {lost}")
        for problem in row["problems"]:
            print(f"PROBLEM {row['id']}: {problem}")
    for skipped in results["skipped"]:
        print(f"skipped {skipped['group']}: {skipped['reason']}")
