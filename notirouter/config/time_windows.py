"""Compiling ``time_windows:``: weekdays, times and zones checked, each problem at its place.

Refused: a zone that is not an IANA name this machine knows, a weekday or time that does not
parse, an empty range (``08:00-08:00``, ``friday:monday``, an empty list or window), and
ranges that overlap: two times or weekdays of one entry, or two entries on the same zone
sharing a weekday and a time (on different zones an overlap is allowed, the clocks differ).
"""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from notirouter.config.checker import Checker
from notirouter.config.models import AppConfig, TimeRangeConfig
from notirouter.routing.time_windows import SECONDS_PER_DAY, TimeRange, TimeWindow

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_TIME = r"(\d{1,2}):(\d{2})(?::(\d{2}))?"
_TIME_RANGE = re.compile(rf"^\s*{_TIME}\s*-\s*{_TIME}\s*$")
Path = tuple[str | int, ...]


def compile_windows(checker: Checker, app: AppConfig) -> dict[str, TimeWindow]:
    """The valid windows by name; every problem is reported to ``checker``."""
    windows: dict[str, TimeWindow] = {}
    for name, entries in app.time_windows.items():
        path: Path = ("time_windows", name)
        if not entries:
            checker.add(path, f"time_windows.{name}: empty: list at least one range")
            continue
        ranges = [_range(checker, entry, (*path, i), name) for i, entry in enumerate(entries)]
        valid = [r for r in ranges if r is not None]
        if len(valid) == len(ranges):
            if _entries_overlap(checker, valid, path, name):
                continue
            windows[name] = TimeWindow(name, tuple(valid))
    return windows


def _range(checker: Checker, entry: TimeRangeConfig, path: Path, name: str) -> TimeRange | None:
    label = f"time_windows.{name}[{path[-1]}]"
    ok = True
    try:
        zone = ZoneInfo(entry.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        checker.add(
            (*path, "timezone"),
            f"{label}.timezone: unknown time zone {entry.timezone!r} "
            "(an IANA name such as Europe/Paris, America/New_York or UTC)",
        )
        ok = False
    days: set[int] = set()
    if entry.weekdays is not None:
        if not entry.weekdays:
            checker.add((*path, "weekdays"), f"{label}.weekdays: empty (leave it out: every day)")
            ok = False
        for j, text in enumerate(entry.weekdays):
            found = _weekdays(text)
            if isinstance(found, str):
                checker.add((*path, "weekdays", j), f"{label}.weekdays: {found}")
                ok = False
            elif days & found:
                checker.add((*path, "weekdays", j), f"{label}.weekdays: {text!r} overlaps another")
                ok = False
            else:
                days |= found
    times: list[tuple[int, int]] = []
    if entry.times is not None:
        if not entry.times:
            checker.add((*path, "times"), f"{label}.times: empty (leave it out: the whole day)")
            ok = False
        for j, text in enumerate(entry.times):
            span = _times(text)
            if isinstance(span, str):
                checker.add((*path, "times", j), f"{label}.times: {span}")
                ok = False
            elif any(_overlap(span, other) for other in times):
                checker.add((*path, "times", j), f"{label}.times: {text!r} overlaps another")
                ok = False
            else:
                times.append(span)
    if not ok:
        return None
    return TimeRange(
        weekdays=frozenset(days) if entry.weekdays is not None else frozenset(range(7)),
        times=tuple(sorted(times)) if entry.times is not None else ((0, SECONDS_PER_DAY),),
        zone=zone,
    )


def _weekdays(text: str) -> set[int] | str:
    """The days ``monday`` or ``monday:friday`` names, or why it is refused."""
    parts = [part.strip().lower() for part in text.split(":")]
    if len(parts) > 2 or any(part not in WEEKDAYS for part in parts):
        return f"{text!r} is not a weekday or a range like monday:friday (full English names)"
    first, last = WEEKDAYS.index(parts[0]), WEEKDAYS.index(parts[-1])
    if last < first:
        return f"{text!r} is empty: a range goes from monday towards sunday (list two ranges)"
    return set(range(first, last + 1))


def _times(text: str) -> tuple[int, int] | str:
    """``HH:MM-HH:MM`` (or ``HH:MM:SS``) as seconds ``(start, end)``, or why it is refused."""
    match = _TIME_RANGE.match(text)
    if match is None:
        return f"{text!r} is not a time range like 08:00-18:00"
    h1, m1, s1, h2, m2, s2 = (int(g or 0) for g in match.groups())
    start, end = h1 * 3600 + m1 * 60 + s1, h2 * 3600 + m2 * 60 + s2
    if max(m1, m2, s1, s2) > 59 or start >= SECONDS_PER_DAY or end > SECONDS_PER_DAY:
        return f"{text!r}: times run from 00:00 to 24:00"
    if end <= start:
        return (
            f"{text!r} is empty: the end must come after the start "
            "(across midnight, list two ranges: 22:00-24:00 and 00:00-07:00)"
        )
    return start, end


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _entries_overlap(checker: Checker, ranges: list[TimeRange], path: Path, name: str) -> bool:
    found = False
    for j, later in enumerate(ranges):
        for i, earlier in enumerate(ranges[:j]):
            if earlier.zone.key != later.zone.key or not earlier.weekdays & later.weekdays:
                continue
            if any(_overlap(a, b) for a in earlier.times for b in later.times):
                checker.add(
                    (*path, j), f"time_windows.{name}[{j}]: overlaps range {i} (same zone and day)"
                )
                found = True
    return found
