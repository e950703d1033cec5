"""The policy's calendars with their public holidays resolved to dates.

A calendar in the policy file names a holiday table (``holidays = {country = "CO"}``); the
``holidays`` package is that table, maintained by country and subdivision. Resolving it here,
once, for a fixed range of years keeps the domain's calendar pure data, and the range fixed
(not the years around today) means a deadline computed on replay is the one computed live.
"""

from __future__ import annotations

from pathlib import Path

import holidays

from services.recovery.domain.calendar import Calendar, CalendarSpec
from services.recovery.domain.errors import PolicyError
from services.recovery.domain.policy import Policy, load_policy
from services.recovery.domain.roster import Roster

# The years holidays are resolved for; a question about a date outside them is refused.
HOLIDAY_YEARS = (2000, 2100)


def resolve(calendar_id: str, spec: CalendarSpec, years: tuple[int, int] = HOLIDAY_YEARS) -> Calendar:
    """The calendar ``spec`` describes, its holiday table's dates for ``years`` (inclusive).

    Raises :class:`PolicyError` for a country or subdivision the holiday tables do not know.
    """
    fields = spec.model_dump(exclude={"holidays"})
    if spec.holidays is None:
        return Calendar(id=calendar_id, **fields)
    table = spec.holidays
    try:
        dates = holidays.country_holidays(table.country, subdiv=table.subdivision, years=range(years[0], years[1] + 1))
    except NotImplementedError as exc:
        raise PolicyError(f"calendars.{calendar_id}.holidays: {exc}") from None
    return Calendar(id=calendar_id, holidays=frozenset(dates), holiday_years=years, **fields)


def policy_calendars(policy: Policy, years: tuple[int, int] = HOLIDAY_YEARS) -> dict[str, Calendar]:
    """Every calendar of ``policy`` by id, holidays resolved."""
    return {name: resolve(name, spec, years) for name, spec in policy.calendars.items()}


def load_calendars(path: Path | None = None) -> dict[str, Calendar]:
    """The calendars of a policy file (None: the shipped default); raise :class:`PolicyError`."""
    return policy_calendars(load_policy(path))


def staffed(roster: Roster, policy: Policy, years: tuple[int, int] = HOLIDAY_YEARS) -> Roster:
    """``roster`` with its teams' calendars resolved from ``policy`` (only those teams use).

    Raises :class:`RosterError` for a team whose calendar the policy does not describe.
    """
    used = {team.calendar for team in roster.teams.values()}
    return roster.with_calendars(
        {name: resolve(name, spec, years) for name, spec in policy.calendars.items() if name in used}
    )
