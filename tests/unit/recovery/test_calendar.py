"""Business-hours calendars: examples on the days the clocks change, holidays, nights and
weekends, and properties against a reference that walks the clock a minute at a time."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.recovery.domain.calendar import (
    WEEKDAYS,
    Calendar,
    CalendarError,
    add_business_hours,
    business_time_between,
    is_open,
    next_open,
)

MADRID = ZoneInfo("Europe/Madrid")
NEW_YORK = ZoneInfo("America/New_York")
BOGOTA = ZoneInfo("America/Bogota")
WEEK = ("mon", "tue", "wed", "thu", "fri")
OFFICE = {day: [("09:00", "13:00"), ("14:00", "18:00")] for day in WEEK}
H = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


def cal(zone: str = "Europe/Madrid", hours: dict[str, Any] | None = None, **fields: Any) -> Calendar:
    return Calendar(id="team", zone=zone, hours=OFFICE if hours is None else hours, **fields)


# --------------------------------------------------------------------------- the model


def test_spans_are_validated() -> None:
    with pytest.raises(ValidationError, match="mon: spans mon 09:00-13:00 and mon 12:00-14:00 overlap"):
        cal(hours={"mon": [("09:00", "13:00"), ("12:00", "14:00")]})
    with pytest.raises(ValidationError, match="cannot be empty"):
        cal(hours={"mon": [("09:00", "09:00")]})
    with pytest.raises(ValidationError, match="cannot start at 24:00"):
        cal(hours={"mon": [("24:00", "06:00")]})
    with pytest.raises(ValidationError, match="String should match pattern"):
        cal(hours={"mon": [("9:00", "13:00")]})
    with pytest.raises(ValidationError, match="Extra inputs"):
        cal(hours={"monday": [("09:00", "13:00")]})


def test_a_span_carried_over_midnight_may_not_overlap_the_next_days_spans() -> None:
    with pytest.raises(ValidationError, match=r"sat: spans fri 22:00-06:00 and sat 05:00-09:00 overlap"):
        cal(hours={"fri": [("22:00", "06:00")], "sat": [("05:00", "09:00")]})
    # Touching is fine, and a span to 24:00 or 00:00 stays on its day.
    week = cal(hours={"fri": [("22:00", "06:00")], "sat": [("06:00", "09:00")], "sun": [("20:00", "00:00")]})
    assert week.hours.on(5) == ((0, 9 * 3600),)
    assert week.hours.on(6) == ((20 * 3600, 24 * 3600),)
    assert week.hours.on(0) == ()


def test_zone_and_dates_are_validated() -> None:
    with pytest.raises(ValidationError, match="unknown time zone 'Europe/Atlantis'"):
        cal(zone="Europe/Atlantis")
    with pytest.raises(ValidationError, match="2026-05-04 is both closed and open"):
        cal(closed=frozenset({date(2026, 5, 4)}), open=frozenset({date(2026, 5, 4)}))
    with pytest.raises(ValidationError, match="open date 2026-05-09 is a sat, which has no hours"):
        cal(open=frozenset({date(2026, 5, 9)}))


# --------------------------------------------------------------------------- the clocks change

# (zone, the day the clocks change, real hours in a 01:00-04:00 span that day)
CHANGES = [
    ("Europe/Madrid", date(2026, 3, 29), 2),
    ("Europe/Madrid", date(2026, 10, 25), 4),
    ("Europe/Madrid", date(2027, 3, 28), 2),
    ("Europe/Madrid", date(2027, 10, 31), 4),
    ("America/New_York", date(2026, 3, 8), 2),
    ("America/New_York", date(2026, 11, 1), 4),
    ("America/New_York", date(2027, 3, 14), 2),
    ("America/New_York", date(2027, 11, 7), 4),
]


@pytest.mark.parametrize(("zone", "day", "real_hours"), CHANGES, ids=lambda v: str(v))
def test_a_span_over_the_change_is_the_real_time_that_passes(zone: str, day: date, real_hours: int) -> None:
    night = cal(zone, {WEEKDAYS[day.weekday()]: [("01:00", "04:00")]})
    tz = ZoneInfo(zone)
    midnight = datetime.combine(day, time(), tz)
    tomorrow = datetime.combine(day + timedelta(days=1), time(), tz)
    assert business_time_between(night, midnight, tomorrow) == real_hours * H
    opens = datetime.combine(day, time(1), tz)
    closes = add_business_hours(night, opens, real_hours)
    assert closes.astimezone(tz).replace(tzinfo=None) == datetime.combine(day, time(4))
    assert closes.astimezone(UTC) - opens.astimezone(UTC) == real_hours * H
    assert add_business_hours(night, midnight, real_hours + 1) > tomorrow


def test_madrid_spring_the_skipped_hour_does_not_count() -> None:
    # 2026-03-29: 02:00 CET becomes 03:00 CEST. From 01:00, 1.5 business hours end at 03:30.
    night = cal(hours={"sun": [("01:00", "04:00")]})
    end = add_business_hours(night, datetime(2026, 3, 29, 1, tzinfo=MADRID), Decimal("1.5"))
    assert end.astimezone(UTC) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert end.astimezone(MADRID).hour == 3
    assert not is_open(night, datetime(2026, 3, 29, 0, 59, tzinfo=UTC) + 2 * H)  # 04:59 CEST


def test_madrid_autumn_the_repeated_hour_counts_twice() -> None:
    # 2026-10-25: 03:00 CEST becomes 02:00 CET. From 01:00 CEST, 2.5 hours end at 02:30 CET.
    night = cal(hours={"sun": [("01:00", "04:00")]})
    end = add_business_hours(night, datetime(2026, 10, 25, 1, tzinfo=MADRID), Decimal("2.5"))
    assert end.astimezone(UTC) == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    assert end.astimezone(MADRID).utcoffset() == H  # the second 02:30, in winter time
    # A span that starts inside the repeated hour is open in both passes through it.
    late = cal(hours={"sun": [("02:30", "04:00")]})
    sunday = datetime(2026, 10, 25, tzinfo=MADRID)
    assert business_time_between(late, sunday, sunday + timedelta(days=1)) == 2 * H
    assert is_open(late, datetime(2026, 10, 25, 0, 45, tzinfo=UTC))  # 02:45 CEST
    assert not is_open(late, datetime(2026, 10, 25, 1, 15, tzinfo=UTC))  # 02:15 CET
    assert is_open(late, datetime(2026, 10, 25, 1, 45, tzinfo=UTC))  # 02:45 CET


def test_new_york_a_working_day_on_either_change_is_its_real_length() -> None:
    always = cal("America/New_York", {day: [("00:00", "24:00")] for day in WEEKDAYS})
    for day, hours in ((date(2026, 3, 8), 23), (date(2026, 11, 1), 25), (date(2026, 11, 2), 24)):
        start = datetime.combine(day, time(), NEW_YORK)
        assert business_time_between(always, start, datetime.combine(day + timedelta(days=1), time(), NEW_YORK)) == (
            hours * H
        )


# --------------------------------------------------------------------------- holidays, nights, weekends


def test_a_colombian_festivo_moved_to_monday_is_not_worked() -> None:
    # San José (19 March) is observed on Monday 23 March 2026.
    festivos = holidays.country_holidays("CO", years=2026)
    assert date(2026, 3, 23) in festivos
    team = cal("America/Bogota", holidays=frozenset(festivos))
    friday = datetime(2026, 3, 20, 17, tzinfo=BOGOTA)
    # One hour on Friday, then Tuesday 09:00 to 10:00.
    assert add_business_hours(team, friday, 2) == datetime(2026, 3, 24, 10, tzinfo=BOGOTA)
    assert next_open(team, datetime(2026, 3, 21, 8, tzinfo=BOGOTA)) == datetime(2026, 3, 24, 9, tzinfo=BOGOTA)
    assert business_time_between(team, friday, datetime(2026, 3, 24, 10, tzinfo=BOGOTA)) == 2 * H


def test_filed_on_friday_night_the_clock_starts_on_monday() -> None:
    team = cal()
    friday = datetime(2026, 5, 8, 23, tzinfo=MADRID)
    assert not is_open(team, friday)
    assert next_open(team, friday) == datetime(2026, 5, 11, 9, tzinfo=MADRID)
    assert add_business_hours(team, friday, 5) == datetime(2026, 5, 11, 15, tzinfo=MADRID)  # lunch skipped
    assert add_business_hours(team, friday, timedelta(hours=8)) == datetime(2026, 5, 11, 18, tzinfo=MADRID)
    assert add_business_hours(team, friday, 0) == friday
    # The result is in the start's zone, whatever the calendar's.
    in_utc = add_business_hours(team, friday.astimezone(UTC), 1)
    assert in_utc.tzinfo is UTC
    assert in_utc == datetime(2026, 5, 11, 10, tzinfo=MADRID)


def test_a_night_shift_crosses_midnight() -> None:
    nights = cal(hours={"fri": [("22:00", "06:00")]})
    friday = datetime(2026, 5, 8, 23, tzinfo=MADRID)
    assert add_business_hours(nights, friday, 3) == datetime(2026, 5, 9, 2, tzinfo=MADRID)
    assert add_business_hours(nights, friday, 7) == datetime(2026, 5, 9, 6, tzinfo=MADRID)
    assert add_business_hours(nights, friday, 8) == datetime(2026, 5, 15, 23, tzinfo=MADRID)
    # The part after midnight belongs to Saturday: a Saturday holiday closes it.
    saturday_off = cal(hours={"fri": [("22:00", "06:00")]}, holidays=frozenset({date(2026, 5, 9)}))
    assert add_business_hours(saturday_off, friday, 3) == datetime(2026, 5, 16, 0, tzinfo=MADRID)


def test_closed_and_open_dates() -> None:
    team = cal(closed=frozenset({date(2026, 5, 11)}), holidays=frozenset({date(2026, 5, 12)}))
    monday = datetime(2026, 5, 11, 9, tzinfo=MADRID)
    assert next_open(team, monday) == datetime(2026, 5, 13, 9, tzinfo=MADRID)
    worked = team.model_copy(update={"open": frozenset({date(2026, 5, 12)})})
    assert next_open(worked, monday) == datetime(2026, 5, 12, 9, tzinfo=MADRID)


def test_a_calendar_that_never_opens_is_an_error_not_a_hang() -> None:
    start = datetime(2026, 5, 8, 23, tzinfo=MADRID)
    with pytest.raises(CalendarError, match="calendar team: no working time within 3 years"):
        add_business_hours(cal(hours={}), start, 1)
    mondays = frozenset(date(2026, 5, 11) + timedelta(weeks=n) for n in range(4 * 53))
    only_mondays = cal(hours={"mon": [("09:00", "17:00")]}, holidays=mondays)
    with pytest.raises(CalendarError, match="no working time"):
        next_open(only_mondays, start)
    # Counting over a closed stretch is just zero.
    assert business_time_between(cal(hours={}), start, start + timedelta(days=5 * 365)) == 0 * H


def test_holidays_resolved_for_some_years_refuse_other_years() -> None:
    team = cal(holiday_years=(2026, 2027))
    with pytest.raises(CalendarError, match="holidays are known for 2026-2027, not for 2028-01-01"):
        add_business_hours(team, datetime(2027, 12, 31, 12, tzinfo=MADRID), 24)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="aware"):
        is_open(cal(), datetime(2026, 5, 8, 12))
    with pytest.raises(ValueError, match="negative"):
        add_business_hours(cal(), datetime(2026, 5, 8, 12, tzinfo=UTC), -1)
    with pytest.raises(ValueError, match="finite"):
        add_business_hours(cal(), datetime(2026, 5, 8, 12, tzinfo=UTC), Decimal("NaN"))


def test_business_time_backwards_is_negative() -> None:
    a, b = datetime(2026, 5, 8, 12, tzinfo=MADRID), datetime(2026, 5, 11, 12, tzinfo=MADRID)
    # 5 hours on Friday, 3 on Monday.
    assert business_time_between(cal(), b, a) == -business_time_between(cal(), a, b) == -8 * H


def test_a_year_of_business_hours_takes_whole_day_jumps() -> None:
    # 2,000 hours of an office week is about a year; it must be quick, not minute by minute.
    start = datetime(2026, 1, 1, tzinfo=MADRID)
    end = add_business_hours(cal(), start, 2000)
    assert end.year == 2026
    assert business_time_between(cal(), start, end) == 2000 * H


# --------------------------------------------------------------------------- properties

ZONES = ["Europe/Madrid", "America/New_York", "Australia/Sydney", "Australia/Lord_Howe"]


def _changes(zone: str) -> list[datetime]:
    """Noon UTC on the eve of each offset change in 2026-2027."""
    tz = ZoneInfo(zone)
    days = [datetime(2026, 1, 1, 12, tzinfo=UTC) + timedelta(days=n) for n in range(730)]
    return [a for a, b in itertools.pairwise(days) if a.astimezone(tz).utcoffset() != b.astimezone(tz).utcoffset()]


CHANGE_EVES = {zone: _changes(zone) for zone in ZONES}


def _clock(quarter: int) -> str:
    return f"{quarter // 4:02d}:{quarter % 4 * 15:02d}"


@st.composite
def calendars(draw: st.DrawFn) -> tuple[Calendar, datetime]:
    """A random calendar in a zone with summer time, and an instant near one of its changes."""
    zone = draw(st.sampled_from(ZONES))
    eve = draw(st.sampled_from(CHANGE_EVES[zone]))
    hours: dict[str, list[tuple[str, str]]] = {}
    for name in draw(st.sets(st.sampled_from(WEEKDAYS), min_size=2)):
        marks = sorted(draw(st.sets(st.integers(0, 96), min_size=2, max_size=6)))
        hours[name] = [(_clock(a), _clock(b)) for a, b in zip(marks[::2], marks[1::2], strict=False)]
    if draw(st.booleans()):  # a span across midnight
        name = draw(st.sampled_from(WEEKDAYS))
        start, end = draw(st.integers(1, 95)), draw(st.integers(0, 95))
        assume(start > end)
        hours.setdefault(name, []).append((_clock(start), _clock(end)))
    local = eve.astimezone(ZoneInfo(zone)).date()
    off = frozenset(local + timedelta(days=n) for n in draw(st.sets(st.integers(-3, 8), max_size=4)))
    try:
        calendar = Calendar(id="random", zone=zone, hours=hours, holidays=off)
    except ValidationError:
        assume(False)
        raise
    minutes = draw(st.integers(-3 * 24 * 60, 3 * 24 * 60))
    return calendar, eve + timedelta(minutes=minutes)


def reference_add(calendar: Calendar, start: datetime, minutes: int) -> datetime:
    """Walk UTC a minute at a time, asking whether each minute is open."""
    at, counted = start, 0
    while counted < minutes:
        if is_open(calendar, at):
            counted += 1
        at += MINUTE
        assert at - start < timedelta(days=40), "the reference walked too far"
    # The walk stops just past the last open minute it counted: the answer.
    return at


def reference_between(calendar: Calendar, a: datetime, b: datetime) -> timedelta:
    open_minutes, at = 0, a
    while at < b:
        open_minutes += is_open(calendar, at)
        at += MINUTE
    return open_minutes * MINUTE


SMALL = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])


@SMALL
@given(calendars(), st.integers(0, 8 * 60))
def test_add_business_hours_agrees_with_a_minute_by_minute_walk(drawn: tuple[Calendar, datetime], minutes: int) -> None:
    calendar, start = drawn
    # At most a week's working time, so that the walk stays within a fortnight or so.
    minutes = min(minutes, sum(end - begin for day in range(7) for begin, end in calendar.hours.on(day)) // 60)
    expected = reference_add(calendar, start, minutes)
    assert add_business_hours(calendar, start, timedelta(minutes=minutes)) == expected
    assert add_business_hours(calendar, start, Decimal(minutes) / 60) == expected  # to the microsecond


@SMALL
@given(calendars(), st.integers(0, 3 * 24 * 60))
def test_business_time_between_agrees_with_a_minute_by_minute_walk(
    drawn: tuple[Calendar, datetime], minutes: int
) -> None:
    calendar, start = drawn
    end = start + timedelta(minutes=minutes)
    assert business_time_between(calendar, start, end) == reference_between(calendar, start, end)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(calendars(), st.integers(0, 40 * 60), st.integers(0, 40 * 60), st.integers(0, 6 * 24 * 60))
def test_adding_and_measuring_are_inverse_and_monotonic(
    drawn: tuple[Calendar, datetime], m1: int, m2: int, span: int
) -> None:
    calendar, start = drawn
    small, large = sorted((timedelta(minutes=m1), timedelta(minutes=m2)))
    first, second = add_business_hours(calendar, start, small), add_business_hours(calendar, start, large)
    assert start <= first <= second
    assert business_time_between(calendar, start, first) == small
    assert business_time_between(calendar, first, second) == large - small
    # Measuring then adding lands at or before the end, with no working time left between.
    end = start + timedelta(minutes=span)
    back = add_business_hours(calendar, start, business_time_between(calendar, start, end))
    assert back <= end
    assert business_time_between(calendar, back, end) == timedelta(0)
    # next_open is open, and nothing of the calendar is open before it.
    opens = next_open(calendar, start)
    assert is_open(calendar, opens)
    assert business_time_between(calendar, start, opens) == timedelta(0)
