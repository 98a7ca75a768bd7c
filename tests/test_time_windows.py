"""Time windows: open and close at the right UTC instants, DST days included; bad ones refused.

The instants are fixed: Europe/Paris moves from UTC+1 to UTC+2 at 01:00 UTC on Sunday
2026-03-29 and back at 01:00 UTC on Sunday 2026-10-25 (the last Sundays of March and October).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from notirouter.config.errors import ConfigError
from notirouter.config.loader import load_config
from notirouter.routing.quiet_hours import WindowRule
from notirouter.routing.time_windows import TimeWindow
from tests.conftest import TOKEN


def at(text: str) -> float:
    """``2026-03-29 06:00`` (UTC) as epoch seconds."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def utc(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


def windows(
    write_config: Callable[..., Path], body: str, routes: str = ""
) -> dict[str, WindowRule]:
    path = write_config(
        f"""
hooks: [{{name: sekoia, token: {TOKEN}}}]
sinks: {{a: {{type: log}}}}
time_windows:
{body}
routes:
{routes or "  - {name: r, sinks: [a]}"}
"""
    )
    config = load_config(path)
    return {r.name: r.window for r in config.routes.routes if r.window is not None}


def window(write_config: Callable[..., Path], ranges: str, *, outside: bool = False) -> WindowRule:
    key = "active_outside" if outside else "active"
    found = windows(
        write_config,
        f"  w: {ranges}",
        f"  - {{name: r, sinks: [a], {key}: w}}",
    )
    return found["r"]


OFFICE = '[{weekdays: ["monday:friday"], times: ["08:00-18:00"], timezone: Europe/Paris}]'


def opens_and_closes(rule: WindowRule, after: str) -> tuple[str | None, str | None]:
    opening = rule.window.next_change(at(after), opening=True)
    assert opening is not None
    return utc(opening), utc(rule.window.next_change(opening, opening=False))


@pytest.mark.parametrize(
    ("after", "opens", "closes"),
    [
        # Friday before the spring change, on UTC+1.
        ("2026-03-27 00:00", "2026-03-27 07:00:00", "2026-03-27 17:00:00"),
        # The weekend holds the change: Monday is on UTC+2.
        ("2026-03-27 17:00", "2026-03-30 06:00:00", "2026-03-30 16:00:00"),
        # Friday before the autumn change, on UTC+2; Monday after it, on UTC+1.
        ("2026-10-23 00:00", "2026-10-23 06:00:00", "2026-10-23 16:00:00"),
        ("2026-10-23 16:00", "2026-10-26 07:00:00", "2026-10-26 17:00:00"),
    ],
)
def test_office_hours_in_paris_follow_the_clock_change(
    write_config: Callable[..., Path], after: str, opens: str, closes: str
) -> None:
    rule = window(write_config, OFFICE)
    assert opens_and_closes(rule, after) == (opens, closes)


def test_on_the_day_of_each_change_an_every_day_window_opens_at_its_local_time(
    write_config: Callable[..., Path],
) -> None:
    rule = window(write_config, '[{times: ["08:00-18:00"], timezone: Europe/Paris}]')
    assert opens_and_closes(rule, "2026-03-28 18:00") == (
        "2026-03-29 06:00:00",
        "2026-03-29 16:00:00",
    )
    assert opens_and_closes(rule, "2026-10-24 18:00") == (
        "2026-10-25 07:00:00",
        "2026-10-25 17:00:00",
    )
    assert rule.window.is_open(at("2026-03-29 06:00"))
    assert not rule.window.is_open(at("2026-03-29 05:59:59"))
    assert not rule.window.is_open(at("2026-10-25 06:59:59"))


def test_a_range_starting_in_the_skipped_hour_opens_when_the_clock_jumps(
    write_config: Callable[..., Path],
) -> None:
    # 02:30 does not exist on 2026-03-29 in Paris: the clock goes from 01:59:59 to 03:00:00
    # (01:00 UTC), which is inside 02:30-04:00; 04:00 CEST is 02:00 UTC.
    rule = window(write_config, '[{times: ["02:30-04:00"], timezone: Europe/Paris}]')
    assert opens_and_closes(rule, "2026-03-28 12:00") == (
        "2026-03-29 01:00:00",
        "2026-03-29 02:00:00",
    )


def test_a_range_in_the_repeated_hour_is_open_both_times_the_clock_shows_it(
    write_config: Callable[..., Path],
) -> None:
    # On 2026-10-25 Paris shows 02:00-02:59 twice: at 00:00 UTC (CEST) and at 01:00 UTC (CET).
    rule = window(write_config, '[{times: ["02:00-02:30"], timezone: Europe/Paris}]')
    assert opens_and_closes(rule, "2026-10-24 12:00") == (
        "2026-10-25 00:00:00",
        "2026-10-25 00:30:00",
    )
    assert opens_and_closes(rule, "2026-10-25 00:30") == (
        "2026-10-25 01:00:00",
        "2026-10-25 01:30:00",
    )


def test_quiet_hours_hold_until_the_morning_across_the_spring_change(
    write_config: Callable[..., Path],
) -> None:
    quiet = '[{times: ["22:00-24:00", "00:00-07:00"], timezone: Europe/Paris}]'
    rule = window(write_config, quiet, outside=True)
    # Saturday 23:00 in Paris (22:00 UTC, UTC+1): held until Sunday 07:00, already UTC+2.
    decision = rule.decide({}, at("2026-03-28 22:00"))
    assert decision.held
    assert utc(decision.until) == "2026-03-29 05:00:00"
    # During the day the route is active.
    assert not rule.decide({}, at("2026-03-29 10:00")).held
    # And back in the evening, held until Monday 07:00 local (05:00 UTC).
    assert utc(rule.decide({}, at("2026-03-29 20:00")).until) == "2026-03-30 05:00:00"


def test_a_window_on_new_york_time_is_held_until_its_own_morning(
    write_config: Callable[..., Path],
) -> None:
    rule = window(
        write_config,
        '[{weekdays: [monday:friday], times: ["09:00-17:00"], timezone: America/New_York}]',
    )
    # Saturday noon UTC: next opening is Monday 09:00 EDT (13:00 UTC); US DST began 2026-03-08.
    assert opens_and_closes(rule, "2026-03-28 12:00") == (
        "2026-03-30 13:00:00",
        "2026-03-30 21:00:00",
    )


def test_bypass_lets_matching_alerts_through_and_a_failing_bypass_holds(
    write_config: Callable[..., Path],
) -> None:
    found = windows(
        write_config,
        f"  office: {OFFICE}",
        '  - {name: r, sinks: [a], active: office, bypass: "alert.urgency.current_value >= 80"}',
    )
    rule = found["r"]
    saturday = at("2026-03-28 12:00")
    assert not rule.decide({"alert": {"urgency": {"current_value": 90}}}, saturday).held
    assert rule.decide({"alert": {"urgency": {"current_value": 20}}}, saturday).held
    assert rule.decide({}, saturday).held  # cannot be evaluated: held, still sent later


def problems(write_config: Callable[..., Path], text: str) -> list[str]:
    path = write_config(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return [str(p).removeprefix(f"{path}:") for p in caught.value.problems]


def test_check_rejects_bad_windows_each_at_its_place(write_config: Callable[..., Path]) -> None:
    found = problems(
        write_config,
        f"""
hooks: [{{name: sekoia, token: {TOKEN}}}]
sinks: {{a: {{type: log}}}}
time_windows:
  zone: [{{timezone: Europe/Pariss}}]
  days: [{{weekdays: [monday:friday, Funday, "friday:monday", wednesday]}}]
  hours: [{{times: ["08:00-18:00", "8h-9h", "12:00-13:00", "10:00-10:00", "23:00-24:30"]}}]
  empty: []
  twice:
    - {{weekdays: [monday], times: ["08:00-12:00"]}}
    - {{weekdays: ["monday:tuesday"], times: ["11:00-13:00"]}}
routes:
  - {{name: r, sinks: [a], active: nope}}
  - {{name: s, sinks: [a], active: zone, active_outside: days}}
  - {{name: t, sinks: [a], bypass: "true"}}
""",
    )
    assert found == [
        "4:21: time_windows.zone[0].timezone: unknown time zone 'Europe/Pariss' "
        "(an IANA name such as Europe/Paris, America/New_York or UTC)",
        "5:37: time_windows.days[0].weekdays: 'Funday' is not a weekday or a range like "
        "monday:friday (full English names)",
        "5:45: time_windows.days[0].weekdays: 'friday:monday' is empty: a range goes from "
        "monday towards sunday (list two ranges)",
        "5:62: time_windows.days[0].weekdays: 'wednesday' overlaps another",
        "6:35: time_windows.hours[0].times: '8h-9h' is not a time range like 08:00-18:00",
        "6:44: time_windows.hours[0].times: '12:00-13:00' overlaps another",
        "6:59: time_windows.hours[0].times: '10:00-10:00' is empty: the end must come after "
        "the start (across midnight, list two ranges: 22:00-24:00 and 00:00-07:00)",
        "6:74: time_windows.hours[0].times: '23:00-24:30': times run from 00:00 to 24:00",
        "7:10: time_windows.empty: empty: list at least one range",
        "10:7: time_windows.twice[1]: overlaps range 0 (same zone and day)",
        "12:35: routes.r.active: unknown time window 'nope' "
        "(defined: days, empty, hours, twice, zone)",
        "13:57: routes.s: use active or active_outside, not both",
        "14:35: routes.t.bypass: only with active or active_outside",
    ]


def test_without_a_window_a_route_is_always_active(write_config: Callable[..., Path]) -> None:
    assert windows(write_config, "  w: [{}]") == {}


def test_a_window_that_never_opens_again_is_not_a_hold() -> None:
    assert TimeWindow("never", ()).next_change(at("2026-01-01 00:00"), opening=True) is None


def test_a_bypass_that_does_not_compile_is_refused_at_its_place(
    write_config: Callable[..., Path],
) -> None:
    found = problems(
        write_config,
        f"""
hooks: [{{name: sekoia, token: {TOKEN}}}]
sinks: {{a: {{type: log}}}}
time_windows: {{w: [{{}}]}}
routes:
  - {{name: r, sinks: [a], active: w, bypass: "attributes.(("}}
""",
    )
    assert [p.split(": ", 1)[0] for p in found] == ["5:46"]
    assert found[0].startswith("5:46: routes.r.bypass: does not compile")
