"""Time windows (``time_windows:``): when a window is open, and when it next opens or closes.

A window is a list of ranges; each range is a set of weekdays, a list of local times of day
and an IANA time zone. An instant is in a range when, *on the range's local clock*, its
weekday is listed and its time of day falls in one of the times (start included, end
excluded). That one rule settles the days the clock changes (README "Time windows"):

- a local time that does not exist (the hour skipped in spring) is never shown by the clock:
  a range starting in it opens at the jump, and one ending in it closes at the jump;
- a local time that repeats (the hour played twice in autumn) is shown twice: a range
  covering it is open both times.

The next opening or closing is found exactly, without stepping through time: the state can
only change at an instant where some range's start or end is shown on its clock, or where a
zone's clock changes; those candidates are computed for the days around the instant and the
first one where the state differs is the answer.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

SECONDS_PER_DAY = 24 * 3600
# A weekly pattern opens within a week; a day more on each side covers the zones' offsets.
DAYS_AHEAD = 8


@dataclass(frozen=True)
class TimeRange:
    """One entry of a window: weekdays (0 = Monday), times of day in seconds ``[start, end)``,
    and the zone whose clock they are read on."""

    weekdays: frozenset[int]
    times: tuple[tuple[int, int], ...]
    zone: ZoneInfo

    def contains(self, instant: float) -> bool:
        """Whether the range's local clock at ``instant`` shows a listed day and time."""
        local = datetime.fromtimestamp(instant, self.zone)
        if local.weekday() not in self.weekdays:
            return False
        seconds = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
        return any(start <= seconds < end for start, end in self.times)

    def candidates(self, instant: float) -> Iterator[float]:
        """Instants after ``instant`` (within about a week) where this range may change state."""
        today = datetime.fromtimestamp(instant, self.zone).date()
        for offset in range(-1, DAYS_AHEAD + 1):
            day = today + timedelta(days=offset)
            yield from _clock_changes(self.zone.key, day)
            if day.weekday() not in self.weekdays:
                continue  # its ends at midnight come from the day before (24:00)
            for start, end in self.times:
                for second in (start, end):
                    yield from _shown_at(self.zone.key, day, second)


@dataclass(frozen=True)
class TimeWindow:
    """A named window: open when any of its ranges is."""

    name: str
    ranges: tuple[TimeRange, ...]
    # opening -> (asked at, answer): every instant in between has the same answer, so a storm
    # held by one window costs one computation (about 0.3 ms), not one per event.
    _last: dict[bool, tuple[float, float]] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )

    def is_open(self, instant: float) -> bool:
        """Whether the window is open at ``instant`` (epoch seconds)."""
        return any(r.contains(instant) for r in self.ranges)

    def next_change(self, instant: float, *, opening: bool) -> float | None:
        """The first instant after ``instant`` at which the window is open (``opening``) or
        closed; ``None`` if that does not happen within a week (it never will)."""
        last = self._last.get(opening)
        if last is not None and last[0] <= instant < last[1]:
            return last[1]
        found = sorted({c for r in self.ranges for c in r.candidates(instant) if c > instant})
        answer = next((c for c in found if self.is_open(c) == opening), None)
        if answer is not None:
            self._last[opening] = (instant, answer)
        return answer


@functools.lru_cache(maxsize=4096)
def _shown_at(zone: str, day: date, second: int) -> tuple[float, ...]:
    """The instants at which the clock of ``zone`` shows ``second`` of ``day`` (one, or two
    in a repeated hour), as epoch seconds; 24:00 is the next day's midnight."""
    tz = ZoneInfo(zone)
    if second >= SECONDS_PER_DAY:
        day, second = day + timedelta(days=1), second - SECONDS_PER_DAY
    wall = datetime.combine(day, time(second // 3600, second // 60 % 60, second % 60))
    found = set()
    for fold in (0, 1):
        instant = wall.replace(tzinfo=tz, fold=fold).timestamp()
        # A time in a skipped hour maps to an instant whose clock shows another time: keep it
        # anyway as a candidate, harmless, the clock change itself is one too.
        found.add(instant)
    return tuple(sorted(found))


@functools.lru_cache(maxsize=4096)
def _clock_changes(zone: str, day: date) -> tuple[float, ...]:
    """The instants during local ``day`` at which the clock of ``zone`` changes offset."""
    tz = ZoneInfo(zone)
    begin = datetime.combine(day, time(0), tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tz).astimezone(UTC)
    low, high = int(begin.timestamp()), int(end.timestamp())
    if _offset(tz, low) == _offset(tz, high):
        return ()  # at most one change a day in every zone that exists
    before = _offset(tz, low)
    while high - low > 1:  # the first second with the new offset
        middle = (low + high) // 2
        if _offset(tz, middle) == before:
            low = middle
        else:
            high = middle
    return (float(high),)


def _offset(tz: ZoneInfo, instant: int) -> timedelta | None:
    return datetime.fromtimestamp(instant, tz).utcoffset()
