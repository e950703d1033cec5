"""Calendars in the policy file: read, holidays resolved, and errors that name the field."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from services.recovery.calendars import HOLIDAY_YEARS, load_calendars, policy_calendars, resolve
from services.recovery.domain import PolicyError, load_policy
from services.recovery.domain.calendar import CalendarSpec, add_business_hours
from services.recovery.domain.policy import DEFAULT_POLICY_FILE

SHIPPED = DEFAULT_POLICY_FILE.read_text(encoding="utf-8")

BOGOTA = """
[calendars.bogota]
version = "2"
zone = "America/Bogota"
holidays = { country = "CO" }
closed = [2026-12-24, 2026-12-31]
open = [2026-12-08]

[calendars.bogota.hours]
mon = [["08:00", "12:00"], ["13:00", "17:00"]]
tue = [["08:00", "12:00"], ["13:00", "17:00"]]
wed = [["08:00", "12:00"], ["13:00", "17:00"]]
thu = [["08:00", "12:00"], ["13:00", "17:00"]]
fri = [["08:00", "12:00"], ["13:00", "17:00"]]
"""


def _policy(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "x.toml"
    path.write_text(SHIPPED + extra, encoding="utf-8")
    return path


def test_the_shipped_policy_has_no_calendars() -> None:
    assert load_policy().calendars == {}
    assert load_calendars() == {}


def test_a_calendar_is_read_with_its_countrys_holidays(tmp_path: Path) -> None:
    calendars = load_calendars(_policy(tmp_path, BOGOTA))
    bogota = calendars["bogota"]
    assert (bogota.id, bogota.version, bogota.zone) == ("bogota", "2", "America/Bogota")
    assert bogota.holiday_years == HOLIDAY_YEARS
    assert date(2026, 3, 23) in bogota.holidays  # San José, observed on a Monday
    assert bogota.closed == {date(2026, 12, 24), date(2026, 12, 31)}
    assert bogota.open == {date(2026, 12, 8)}  # the Immaculate Conception, worked this year
    tz = ZoneInfo("America/Bogota")
    assert add_business_hours(bogota, datetime(2026, 3, 20, 16, tzinfo=tz), 2) == datetime(2026, 3, 24, 9, tzinfo=tz)
    assert add_business_hours(bogota, datetime(2026, 12, 7, 17, tzinfo=tz), 1) == datetime(2026, 12, 8, 9, tzinfo=tz)


def test_a_subdivision_adds_its_own_holidays() -> None:
    def spain(**table: str) -> frozenset[date]:
        spec = CalendarSpec(zone="Europe/Madrid", hours={"mon": [("09:00", "17:00")]}, holidays=table)
        return resolve("es", spec).holidays

    country, madrid = spain(country="ES"), spain(country="ES", subdivision="MD")
    assert date(2026, 5, 2) in madrid  # Madrid Day, the region's own
    assert date(2026, 5, 2) not in country
    assert date(2026, 10, 12) in country & madrid  # a national holiday


def test_a_calendar_without_a_holiday_table_is_good_for_every_year() -> None:
    spec = CalendarSpec(zone="UTC", hours={"mon": [("09:00", "17:00")]}, closed=frozenset({date(2026, 1, 5)}))
    calendar = resolve("plain", spec)
    assert (calendar.holidays, calendar.holiday_years) == (frozenset(), None)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('zone = "America/Bogota"', 'zone = "America/Atlantis"', "calendars.bogota: zone: unknown time zone"),
        (
            'mon = [["08:00", "12:00"], ["13:00", "17:00"]]',
            'mon = [["08:00", "12:00"], ["11:00", "17:00"]]',
            "calendars.bogota.hours: mon: spans mon 08:00-12:00 and mon 11:00-17:00 overlap",
        ),
        ('mon = [["08:00", "12:00"]', 'mon = [["8am", "12:00"]', "calendars.bogota.hours.mon.0.0: String should match"),
        ("open = [2026-12-08]", "open = [2026-12-06]", "open date 2026-12-06 is a sun, which has no hours"),
        ('holidays = { country = "CO" }', 'holidays = { country = "Colombia" }', "calendars.bogota.holidays.country"),
        (
            'holidays = { country = "CO" }',
            'holidays = { country = "CO", region = "DC" }',
            "calendars.bogota.holidays.region: Extra inputs are not permitted",
        ),
        ("[calendars.bogota]", "[calendars.Bogota]", "calendars.Bogota.[key]: String should match"),
    ],
)
def test_a_bad_calendar_is_a_policy_error_naming_the_field(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in BOGOTA
    with pytest.raises(PolicyError, match=r"^policy file .*x\.toml: ") as raised:
        load_calendars(_policy(tmp_path, BOGOTA.replace(old, new, 1)))
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('{ country = "XX" }', "calendars.bogota.holidays: Country XX not available"),
        (
            '{ country = "CO", subdivision = "ZZ" }',
            "calendars.bogota.holidays: Entity `CO` does not have subdivision ZZ",
        ),
    ],
)
def test_an_unknown_holiday_table_is_a_policy_error(tmp_path: Path, table: str, message: str) -> None:
    policy = load_policy(_policy(tmp_path, BOGOTA.replace('{ country = "CO" }', table)))
    with pytest.raises(PolicyError) as raised:
        policy_calendars(policy)
    assert str(raised.value) == message


def test_the_example_in_the_policy_book_loads(tmp_path: Path) -> None:
    page = (Path(__file__).resolve().parents[3] / "docs" / "policy.md").read_text(encoding="utf-8")
    section = page[page.index("## Calendars") :]
    example = section[section.index("```toml\n") + len("```toml\n") : section.index("```\n", 8)]
    bogota = load_calendars(_policy(tmp_path, "\n" + example))["bogota"]
    assert bogota.hours.on(6) == ((0, 6 * 3600),)  # Saturday's night shift ends on Sunday
