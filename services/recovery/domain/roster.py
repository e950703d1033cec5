"""Who owns a case: the roster of named owners and supervisors, and the stable pick.

Each case gets one named person as the customer's contact from now on (docs/policy.md, the
film story: "your contact for anything in future"). The pick is a pure function of the customer id, so
a replay assigns the same owner and a returning customer is not passed around.

A member may belong to a team, and a team works on a calendar of the policy's
(``[teams.<id>] calendar = "<calendar id>"``): a person's deadline on an escalation is counted
in that calendar's business hours. The roster file names the calendars; the composition root
hands their resolved form in with :meth:`Roster.with_calendars`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from services.common.contract.events import EmailStr, Person
from services.recovery.domain.calendar import Calendar
from services.recovery.domain.errors import RosterError
from services.recovery.domain.loading import load_toml_model

DEFAULT_ROSTER_FILE = Path(__file__).resolve().parent.parent / "policy" / "roster.toml"

Language = Literal["es", "en"]


class Member(BaseModel):
    """A person on the roster and the languages they answer customers in."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=256)
    name: str = Field(min_length=1, max_length=256)
    email: EmailStr
    languages: tuple[Language, ...] = Field(min_length=1)
    team: str | None = Field(default=None, min_length=1, max_length=64)

    def person(self) -> Person:
        """The member as the contract's ``Person`` (what events carry)."""
        # The member was validated when the roster loaded; no need to validate it again.
        return Person.model_construct(id=self.id, name=self.name, email=self.email)


class Team(BaseModel):
    """A team: the calendar of the policy its members work on."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    calendar: str = Field(min_length=1, max_length=64)


class Roster(BaseModel):
    """Case owners and the supervisors who take urgent escalations."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    owners: tuple[Member, ...] = Field(min_length=1)
    supervisors: tuple[Member, ...] = Field(min_length=1)
    teams: dict[str, Team] = Field(default_factory=dict)
    # Each member's team calendar, resolved (see with_calendars); a member without one is absent.
    _calendars: dict[str, Calendar] = PrivateAttr(default_factory=dict)
    _by_id: dict[str, Calendar] = PrivateAttr(default_factory=dict)
    # Derived once from the fields (every case asks): owners by id, and the candidates per
    # language, both as the contract's Person.
    _owner_by_id: dict[str, Person] = PrivateAttr(default_factory=dict)
    _candidates: dict[tuple[str, str], tuple[Person, ...]] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any, /) -> None:
        self._owner_by_id = {m.id: m.person() for m in self.owners}
        for group, members in (("owners", self.owners), ("supervisors", self.supervisors)):
            for language in ("es", "en"):
                self._candidates[(group, language)] = tuple(m.person() for m in _speaking(members, language))

    def owner(self, member_id: str) -> Person | None:
        """The owner with this id, if on the roster."""
        # Private attributes are read through pydantic's __getattr__: straight from the dict.
        owners: dict[str, Person] = self.__pydantic_private__["_owner_by_id"]  # type: ignore[index]
        return owners.get(member_id)

    def candidates(self, group: Literal["owners", "supervisors"], locale: str) -> tuple[Person, ...]:
        """Who may take a case of ``locale``'s language, by id (see :func:`_speaking`)."""
        candidates: dict[tuple[str, str], tuple[Person, ...]] = self.__pydantic_private__["_candidates"]  # type: ignore[index]
        return candidates[(group, language_of(locale))]

    def calendar_of(self, member_id: str) -> Calendar | None:
        """The calendar of the member's team, if the member has a team with one resolved."""
        calendars: dict[str, Calendar] = self.__pydantic_private__["_calendars"]  # type: ignore[index]
        return calendars.get(member_id)

    def calendar(self, calendar_id: str) -> Calendar | None:
        """The teams' calendar with this id, as resolved (None: no team works on it)."""
        by_id: dict[str, Calendar] = self.__pydantic_private__["_by_id"]  # type: ignore[index]
        return by_id.get(calendar_id)

    def with_calendars(self, calendars: dict[str, Calendar]) -> Roster:
        """This roster with its teams' calendars taken from ``calendars`` (the policy's, by id).

        Raises :class:`RosterError` for a team whose calendar is not among them.
        """
        for name, team in sorted(self.teams.items()):
            if team.calendar not in calendars:
                raise RosterError(f"roster file: team {name}: calendar {team.calendar!r} is not in the policy")
        bound = self.model_copy()
        bound._by_id = {team.calendar: calendars[team.calendar] for team in self.teams.values()}
        bound._calendars = {
            m.id: calendars[self.teams[m.team].calendar] for m in (*self.owners, *self.supervisors) if m.team
        }
        return bound

    @model_validator(mode="after")
    def _unique_ids(self) -> Roster:
        ids = [m.id for m in (*self.owners, *self.supervisors)]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"ids must be unique; repeated: {', '.join(duplicates)}")
        for m in (*self.owners, *self.supervisors):
            if m.team is not None and m.team not in self.teams:
                raise ValueError(f"{m.id}: team {m.team!r} is not among the roster's teams")
        return self


def load_roster(path: Path | None = None) -> Roster:
    """Load a roster file (None: the shipped one); raise :class:`RosterError`."""
    return load_toml_model(path or DEFAULT_ROSTER_FILE, Roster, "roster file", RosterError)


def language_of(locale: str) -> Language:
    """``es`` for ``es`` and ``es-*`` locales, ``en`` for every other."""
    return "es" if locale.replace("_", "-").split("-")[0].lower() == "es" else "en"


def _speaking(members: tuple[Member, ...], locale: str) -> list[Member]:
    # The customer's language first, then English, then anyone: a case always gets an owner.
    for language in (language_of(locale), "en"):
        found = [m for m in members if language in m.languages]
        if found:
            return sorted(found, key=lambda m: m.id)
    return sorted(members, key=lambda m: m.id)


def _stable_index(key: str, size: int) -> int:
    # sha256, not hash(): Python's str hash is salted per process, and a replay must agree.
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") % size


def assign_owner(roster: Roster, customer_id: str, locale: str, previous_owner_id: str | None) -> Person:
    """The case owner for a customer.

    A returning customer keeps the previous owner while that person is on the roster
    (whatever the language). Otherwise a stable pick, by a hash of the customer id, among
    the owners speaking the locale's language, falling back to English speakers, then to
    all owners. Candidates are ordered by id so reordering the file changes nothing.
    """
    if previous_owner_id is not None:
        kept = roster.owner(previous_owner_id)
        if kept is not None:
            return kept
    candidates = roster.candidates("owners", locale)
    return candidates[_stable_index(customer_id, len(candidates))]


def supervisor_for(roster: Roster, locale: str) -> Person:
    """The supervisor for urgent escalations: the first (by id) speaking the language."""
    return roster.candidates("supervisors", locale)[0]
