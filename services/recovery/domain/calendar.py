"""Business-hours calendars: when a team works, and deadlines counted in its working time.

A calendar has a time zone, working spans per weekday in local wall time, and dates it does not
work (public holidays, extra closed dates) or works anyway (extra open dates). Business time is
real elapsed time while the calendar is open, and the calendar is open at an instant when the
instant's local date is a working day and its local wall time lies in one of that weekday's
spans. So on the day the clocks go forward the missing hour does not count, and on the day they
go back the repeated hour counts twice: a span 01:00-04:00 is two real hours in spring and four
in autumn where the change falls inside it.

A span is ``("HH:MM", "HH:MM")``, start included, end excluded; the end may be ``24:00``. A span
whose end is before its start crosses midnight: ``fri = [["22:00", "06:00"]]`` is Friday
22:00-24:00 and Saturday 00:00-06:00, and the part after midnight belongs to Saturday (a
holiday on Saturday closes it). Spans of one day, those carried over midnight included, may
touch but not overlap.

Pure: the clock is always an argument, and holidays come as dates (the loader in
``services/recovery/calendars.py`` reads them from the holiday tables). The arithmetic jumps
a day at a time, never a minute: O(days) in the time it spans.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from services.recovery.domain.errors import RecoveryError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_SECONDS = 24 * 3600
# How far ahead add_business_hours and next_open look for working time before they give up.
SEARCH_YEARS = 3

_DAY = timedelta(days=1)
_SEARCH = timedelta(days=366 * SEARCH_YEARS)
# Wider than any UTC offset a zone has (-12:00 to +14:00): the instants whose local date is a
# given day all lie within its UTC midnight minus this and the next UTC midnight plus this.
_MARGIN = timedelta(hours=16)
# Offsets are sampled this often to find the changes in a day; zones change at most twice a year.
_SAMPLE = timedelta(hours=2)

Clock = Annotated[str, Field(pattern=r"^(?:(?:[01]\d|2[0-3]):[0-5]\d|24:00)$")]
Span = tuple[Clock, Clock]
Seconds = tuple[tuple[int, int], ...]


class CalendarError(RecoveryError):
    """A question the calendar cannot answer: no working time within the search, or a date
    outside the years its holidays are known for."""


def _seconds(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 3600 + int(minutes) * 60


class Hours(BaseModel):
    """The working spans of each weekday, in local wall time."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mon: tuple[Span, ...] = ()
    tue: tuple[Span, ...] = ()
    wed: tuple[Span, ...] = ()
    thu: tuple[Span, ...] = ()
    fri: tuple[Span, ...] = ()
    sat: tuple[Span, ...] = ()
    sun: tuple[Span, ...] = ()
    # Per weekday (Monday first), the spans in seconds from midnight, sorted, disjoint, with
    # the parts carried over midnight moved to the next day and touching spans joined.
    _week: tuple[Seconds, ...] = PrivateAttr(default=((),) * 7)

    @model_validator(mode="after")
    def _normalised(self) -> Hours:
        pieces: list[list[tuple[int, int, str]]] = [[] for _ in WEEKDAYS]
        for index, name in enumerate(WEEKDAYS):
            for first, last in getattr(self, name):
                label = f"{name} {first}-{last}"
                start, end = _seconds(first), _seconds(last)
                if start == DAY_SECONDS:
                    raise ValueError(f"{label}: a span cannot start at 24:00")
                if start == end or (end == 0 and start == 0):
                    raise ValueError(f"{label}: a span cannot be empty")
                if start < end:
                    pieces[index].append((start, end, label))
                else:
                    pieces[index].append((start, DAY_SECONDS, label))
                    if end > 0:
                        pieces[(index + 1) % 7].append((0, end, label))
        week: list[Seconds] = []
        for index, day in enumerate(pieces):
            joined: list[tuple[int, int]] = []
            previous = ""
            for start, end, label in sorted(day):
                if joined and start < joined[-1][1]:
                    raise ValueError(f"{WEEKDAYS[index]}: spans {previous} and {label} overlap")
                if joined and start == joined[-1][1]:
                    joined[-1] = (joined[-1][0], end)
                else:
                    joined.append((start, end))
                previous = label
            week.append(tuple(joined))
        self._week = tuple(week)
        return self

    def on(self, weekday: int) -> Seconds:
        """The spans of ``weekday`` (0 = Monday) in seconds from midnight."""
        return self._week[weekday]


class _Days(BaseModel):
    """What a calendar and its description in a policy file share."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str = Field(default="1", min_length=1)
    zone: str = Field(min_length=1)
    hours: Hours
    closed: frozenset[date] = frozenset()
    open: frozenset[date] = frozenset()
    _tz: ZoneInfo = PrivateAttr()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        try:
            self._tz = ZoneInfo(self.zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"zone: unknown time zone {self.zone!r}") from None
        both = sorted(self.closed & self.open)
        if both:
            raise ValueError(f"{both[0]} is both closed and open")
        for day in sorted(self.open):
            if not self.hours.on(day.weekday()):
                raise ValueError(f"open date {day} is a {WEEKDAYS[day.weekday()]}, which has no hours")
        return self

    @property
    def tz(self) -> ZoneInfo:
        """The calendar's time zone."""
        return self._tz


class HolidayTable(BaseModel):
    """Which public-holiday table a calendar follows: a country, optionally a subdivision."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    country: str = Field(pattern=r"^[A-Z]{2,3}$")
    subdivision: str | None = Field(default=None, min_length=1)


class CalendarSpec(_Days):
    """A calendar as a policy file describes it (``[calendars.<id>]``), holidays by table."""

    holidays: HolidayTable | None = None


class Calendar(_Days):
    """A team's working calendar, holidays resolved to dates.

    ``holiday_years`` (first, last) are the years ``holidays`` was resolved for; a question
    about a date outside them raises :class:`CalendarError` rather than miss a holiday. None:
    ``holidays`` is complete for every year.
    """

    id: str = Field(min_length=1)
    holidays: frozenset[date] = frozenset()
    holiday_years: tuple[int, int] | None = None

    def spans_on(self, day: date) -> Seconds:
        """The spans worked on local date ``day`` in seconds from midnight (none if closed)."""
        if self.holiday_years is not None and not self.holiday_years[0] <= day.year <= self.holiday_years[1]:
            first, last = self.holiday_years
            raise CalendarError(f"calendar {self.id}: holidays are known for {first}-{last}, not for {day}")
        if day not in self.open and (day in self.holidays or day in self.closed):
            return ()
        return self.hours.on(day.weekday())


def is_open(cal: Calendar, at: datetime) -> bool:
    """Whether the calendar is working at the aware instant ``at``."""
    local = _aware(at, "at").astimezone(cal.tz)
    wall = ((local.hour * 60 + local.minute) * 60 + local.second) * 1_000_000 + local.microsecond
    return any(start * 1_000_000 <= wall < end * 1_000_000 for start, end in cal.spans_on(local.date()))


def next_open(cal: Calendar, at: datetime) -> datetime:
    """``at`` if the calendar is open then, else the instant it next opens (in ``at``'s zone).

    Raises :class:`CalendarError` if it does not open within ``SEARCH_YEARS``.
    """
    for start, _ in _stretches(cal, _aware(at, "at"), None):
        return start.astimezone(at.tzinfo)
    raise AssertionError("_stretches ends only by raising")  # pragma: no cover


def add_business_hours(cal: Calendar, start: datetime, hours: Decimal | int | timedelta) -> datetime:
    """The first instant by which ``hours`` of business time have run from ``start``.

    ``hours`` is a number of hours (to the microsecond) or a timedelta, not negative; zero gives
    ``start``. A start outside working hours begins counting when the calendar opens. The result
    is in ``start``'s zone. Raises :class:`CalendarError` if the calendar does not open for
    ``SEARCH_YEARS`` at a stretch.
    """
    remaining = _duration(hours)
    if remaining == timedelta(0):
        return _aware(start, "start")
    for first, last in _stretches(cal, _aware(start, "start"), None):
        if last - first >= remaining:
            return (first + remaining).astimezone(start.tzinfo)
        remaining -= last - first
    raise AssertionError("_stretches ends only by raising")  # pragma: no cover


def business_time_between(cal: Calendar, a: datetime, b: datetime) -> timedelta:
    """The business time from ``a`` to ``b`` (negative if ``b`` is before ``a``)."""
    if _aware(b, "b") < _aware(a, "a"):
        return -business_time_between(cal, b, a)
    total = timedelta(0)
    for first, last in _stretches(cal, a, b):
        total += last - first
    return total


def _aware(at: datetime, name: str) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime")
    return at


def _duration(hours: Decimal | int | timedelta) -> timedelta:
    if isinstance(hours, timedelta):
        duration = hours
    else:
        amount = Decimal(hours)
        if not amount.is_finite():
            raise ValueError(f"hours must be a finite number, not {amount}")
        micros = (amount * 3_600_000_000).to_integral_value(rounding=ROUND_HALF_EVEN)
        duration = timedelta(microseconds=int(micros))
    if duration < timedelta(0):
        raise ValueError(f"hours cannot be negative: {hours}")
    return duration


def _stretches(cal: Calendar, start: datetime, stop: datetime | None) -> Iterator[tuple[datetime, datetime]]:
    """The calendar's open stretches in UTC, in time order, cut to ``[start, stop)``.

    With no ``stop`` it goes on for ever, and raises :class:`CalendarError` once it has found no
    working time for ``SEARCH_YEARS``. Days are visited in order, but a stretch is handed out
    only when no later day can have one that begins before it (where the clocks go back over
    midnight, a local day's stretches can follow the next day's).
    """
    start = start.astimezone(UTC)
    stop = None if stop is None else stop.astimezone(UTC)
    day = start.astimezone(cal.tz).date() - 2 * _DAY
    pending: list[tuple[datetime, datetime]] = []
    last_open = start
    while True:
        pending.extend(_day_stretches(cal, day))
        pending.sort()
        # No stretch of a later day begins before this.
        horizon = datetime.combine(day + _DAY, time(), tzinfo=UTC) - _MARGIN
        while pending and pending[0][0] < horizon:
            first, last = pending.pop(0)
            if stop is not None and first >= stop:
                return
            if last > start:
                yield max(first, start), last if stop is None else min(last, stop)
                last_open = last
        if stop is not None and horizon >= stop:
            return
        if stop is None and horizon - last_open > _SEARCH:
            raise CalendarError(
                f"calendar {cal.id}: no working time within {SEARCH_YEARS} years of {start.isoformat()}"
            )
        day += _DAY


def _day_stretches(cal: Calendar, day: date) -> list[tuple[datetime, datetime]]:
    """The UTC stretches in which ``day`` is the local date and the wall time is in a span."""
    spans = cal.spans_on(day)
    if not spans:
        return []
    midnight = datetime.combine(day, time(), tzinfo=UTC)
    found: list[tuple[datetime, datetime]] = []
    for first, last, offset in _offsets(cal.zone, day):
        # Within a stretch of one offset, wall time is UTC plus the offset.
        for start, end in spans:
            lo = max(first, midnight + timedelta(seconds=start) - offset)
            hi = min(last, midnight + timedelta(seconds=end) - offset)
            if lo < hi:
                found.append((lo, hi))
    found.sort()
    joined: list[tuple[datetime, datetime]] = []
    for lo, hi in found:
        if joined and lo == joined[-1][1]:
            joined[-1] = (joined[-1][0], hi)
        else:
            joined.append((lo, hi))
    return joined


@functools.lru_cache(maxsize=4096)
def _offsets(zone: str, day: date) -> tuple[tuple[datetime, datetime, timedelta], ...]:
    """UTC stretches of one UTC offset covering every instant whose local date can be ``day``."""
    tz = ZoneInfo(zone)
    midnight = datetime.combine(day, time(), tzinfo=UTC)
    lo, hi = midnight - _MARGIN, midnight + _DAY + _MARGIN
    samples = [lo]
    while samples[-1] + _SAMPLE < hi:
        samples.append(samples[-1] + _SAMPLE)
    samples.append(hi)
    stretches: list[tuple[datetime, datetime, timedelta]] = []
    begin, offset = lo, _offset(tz, lo)
    for previous, sample in itertools.pairwise(samples):
        if _offset(tz, sample) != offset:
            change = _change(tz, previous, sample, offset)
            stretches.append((begin, change, offset))
            begin, offset = change, _offset(tz, change)
    stretches.append((begin, hi, offset))
    return tuple(stretches)


def _offset(tz: ZoneInfo, at: datetime) -> timedelta:
    offset = at.astimezone(tz).utcoffset()
    assert offset is not None
    return offset


def _change(tz: ZoneInfo, before: datetime, after: datetime, offset: timedelta) -> datetime:
    """The first whole second in ``(before, after]`` whose offset is no longer ``offset``."""
    lo, hi = 0, int((after - before).total_seconds())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _offset(tz, before + timedelta(seconds=mid)) == offset:
            lo = mid
        else:
            hi = mid
    return before + timedelta(seconds=hi)
