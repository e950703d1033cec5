"""Two clocks: the customer's promise on the wall clock, the person's deadline in business hours
of the assignee's team calendar, and the warning, breach and fallback each on its configured one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.common.contract.events import CaseEscalated, DecisionMade, EventData, SlaBreached
from services.recovery.domain import (
    Case,
    CustomerHistory,
    FileComplaint,
    FireTimer,
    Policy,
    Roster,
    Timer,
    fold,
    load_roster,
    pending_timers,
)
from services.recovery.domain.calendar import Calendar, Hours
from services.recovery.domain.commands import TimerKind
from services.recovery.domain.errors import RosterError
from services.recovery.domain.policy import Clocks

from .builders import POLICY, T0, charge, complaint, file, only, run

# T0 is Sunday 22 November 2026, 05:00 in Bogotá: outside hours. Monday and Tuesday work
# 08:00-12:00 and 13:00-17:00 (8 hours a day), so 10 business hours end on Tuesday at 10:00
# (15:00 UTC) and the warning, at 8, on Monday at 17:00 (22:00 UTC).
WORKDAY = (("08:00", "12:00"), ("13:00", "17:00"))
BOGOTA = Calendar(id="bogota", version="3", zone="America/Bogota",
                  hours=Hours(mon=WORKDAY, tue=WORKDAY, wed=WORKDAY, thu=WORKDAY, fri=WORKDAY))  # fmt: skip
PERSON_DUE = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
PERSON_WARNING = datetime(2026, 11, 23, 22, 0, tzinfo=UTC)
WALL_DUE = T0 + timedelta(hours=10)
WALL_WARNING = T0 + timedelta(hours=8)
BUSINESS = Clocks(warning="business", breach="business", fallback="business")


def teamed(calendar: Calendar = BOGOTA) -> Roster:
    """The shipped roster with every member in one team on ``calendar``."""
    shipped = load_roster()
    data = shipped.model_dump()
    for member in (*data["owners"], *data["supervisors"]):
        member["team"] = "bogota"
    data["teams"] = {"bogota": {"calendar": calendar.id}}
    return Roster.model_validate(data).with_calendars({calendar.id: calendar})


def policy(**clocks: Clocks) -> Policy:
    return POLICY.model_copy(update={"clocks": clocks})


def escalate(the_policy: Policy, roster: Roster, claimed: str = "20.00") -> tuple[list[EventData], Case]:
    claim = complaint("service_failure", claimed_amount=claimed, currency="USD")
    command = FileComplaint(complaint=claim, charge=charge("80.00"), history=CustomerHistory())
    events, case = run(None, command, T0, the_policy, roster)
    assert case.status == "escalated"
    return events, case


def fire(
    case: Case, kind: TimerKind, due_at: datetime, the_policy: Policy, roster: Roster
) -> tuple[list[EventData], Case]:
    return run(case, FireTimer(kind=kind, due_at=due_at, charge=charge("80.00")), due_at, the_policy, roster)


def test_an_escalation_carries_the_person_s_deadline_on_the_owner_s_team_calendar() -> None:
    events, _ = escalate(POLICY, teamed())
    raised = only(events, CaseEscalated)
    assert raised.due_by == WALL_DUE
    assert (raised.person_due_by, raised.person_warning_at) == (PERSON_DUE, PERSON_WARNING)
    assert raised.calendar is not None
    assert (raised.calendar.id, raised.calendar.version, raised.calendar.zone) == ("bogota", "3", "America/Bogota")


def test_an_owner_without_a_team_calendar_has_only_the_customer_s_deadline() -> None:
    events, _ = file(complaint("service_failure"))
    raised = only(events, CaseEscalated)
    assert (raised.person_due_by, raised.person_warning_at, raised.calendar) == (None, None, None)


def test_the_shipped_policy_keeps_the_wall_clock_even_with_calendars() -> None:
    _, case = escalate(POLICY, teamed())
    assert pending_timers(case, POLICY) == [
        Timer(kind="sla_warning", due_at=WALL_WARNING),
        Timer(kind="sla_breach", due_at=WALL_DUE),
    ]


def test_on_business_hours_a_case_filed_out_of_hours_warns_and_breaches_on_the_calendar() -> None:
    business = policy(normal=BUSINESS)
    _, case = escalate(business, teamed())
    assert pending_timers(case, business) == [
        Timer(kind="sla_warning", due_at=PERSON_WARNING),
        Timer(kind="sla_breach", due_at=PERSON_DUE),
    ]
    events, after = fire(case, "sla_breach", PERSON_DUE, business, teamed())
    assert [type(e) for e in events] == [SlaBreached, DecisionMade]
    assert only(events, DecisionMade).policy.rule == "sla-breach-fallback"
    assert after.status == "decided"


def test_business_hours_come_from_the_policy_per_priority() -> None:
    half_day = policy(normal=BUSINESS.model_copy(update={"business_hours": Decimal(4)}))
    raised = only(escalate(half_day, teamed())[0], CaseEscalated)
    # Monday 08:00-12:00 in Bogotá.
    assert raised.person_due_by == datetime(2026, 11, 23, 17, 0, tzinfo=UTC)


def test_urgent_escalations_may_stay_on_the_wall_clock_while_normal_ones_run_on_business_hours() -> None:
    mixed = policy(normal=BUSINESS, urgent=Clocks())
    _, normal = escalate(mixed, teamed())
    assert pending_timers(normal, mixed)[-1] == Timer(kind="sla_breach", due_at=PERSON_DUE)
    # Over the fallback limit: the breach refers the case urgently to a supervisor.
    _, big = escalate(mixed, teamed(), claimed="900.00")
    events, after = fire(big, "sla_breach", PERSON_DUE, mixed, teamed())
    urgent = only(events, CaseEscalated)
    assert urgent.priority == "urgent"
    assert after.breached
    assert pending_timers(after, mixed) == []


def test_a_breach_on_the_wall_clock_alerts_and_the_fallback_waits_for_the_person_s_deadline() -> None:
    late_fallback = policy(normal=Clocks(breach="wall", fallback="business"))
    roster = teamed()
    _, case = escalate(late_fallback, roster)
    assert [(t.kind, t.due_at) for t in pending_timers(case, late_fallback)] == [
        ("sla_warning", WALL_WARNING),
        ("sla_breach", WALL_DUE),
        ("sla_fallback", PERSON_DUE),
    ]
    events, case = fire(case, "sla_breach", WALL_DUE, late_fallback, roster)
    assert [type(e) for e in events] == [SlaBreached]
    assert pending_timers(case, late_fallback) == [Timer(kind="sla_fallback", due_at=PERSON_DUE)]
    events, case = fire(case, "sla_fallback", PERSON_DUE, late_fallback, roster)
    made = only(events, DecisionMade)
    assert (made.policy.rule, made.within_sla) == ("sla-breach-fallback", False)
    assert case.status == "decided"


def test_a_fallback_on_the_wall_clock_keeps_the_customer_s_promise_before_the_person_s_breach() -> None:
    early_fallback = policy(normal=Clocks(warning="business", breach="business", fallback="wall"))
    roster = teamed()
    _, case = escalate(early_fallback, roster)
    assert pending_timers(case, early_fallback) == [
        Timer(kind="sla_fallback", due_at=WALL_DUE),
        Timer(kind="sla_warning", due_at=PERSON_WARNING),
        Timer(kind="sla_breach", due_at=PERSON_DUE),
    ]
    events, case = fire(case, "sla_fallback", WALL_DUE, early_fallback, roster)
    assert [type(e) for e in events] == [DecisionMade]
    assert only(events, DecisionMade).policy.rule == "sla-breach-fallback"


def test_the_fallback_runs_once_when_it_refers_the_case_to_a_supervisor() -> None:
    early_fallback = policy(normal=Clocks(breach="business", fallback="wall"))
    roster = teamed()
    _, case = escalate(early_fallback, roster, claimed="900.00")
    events, case = fire(case, "sla_fallback", WALL_DUE, early_fallback, roster)
    assert only(events, CaseEscalated).priority == "urgent"
    # The urgent escalation runs on the wall clock: already breached, and no second fallback.
    events, case = fire(case, "sla_breach", WALL_DUE, early_fallback, roster)
    assert [type(e) for e in events] == [SlaBreached]
    assert pending_timers(case, early_fallback) == []


def test_timers_come_from_the_recorded_escalation_after_the_calendar_file_changes() -> None:
    business = policy(normal=BUSINESS)
    events, _ = escalate(business, teamed())
    # The calendar now works on Sundays too; the recorded case keeps its deadlines.
    sundays = BOGOTA.model_copy(update={"version": "4"})
    sundays = Calendar.model_validate({**sundays.model_dump(), "hours": {**BOGOTA.hours.model_dump(), "sun": WORKDAY}})
    replayed = fold(events)
    assert replayed is not None
    assert pending_timers(replayed, business)[-1] == Timer(kind="sla_breach", due_at=PERSON_DUE)
    fresh = only(escalate(business, teamed(sundays))[0], CaseEscalated)
    assert fresh.person_due_by != PERSON_DUE
    assert fresh.calendar is not None
    assert fresh.calendar.version == "4"


def test_a_team_must_name_a_calendar_of_the_policy() -> None:
    data = load_roster().model_dump()
    data["teams"] = {"madrid": {"calendar": "madrid"}}
    roster = Roster.model_validate(data)
    with pytest.raises(RosterError, match="team madrid: calendar 'madrid'"):
        roster.with_calendars({})


def test_a_member_s_team_must_be_on_the_roster() -> None:
    data = load_roster().model_dump()
    data["owners"][0]["team"] = "nowhere"
    with pytest.raises(ValueError, match="team 'nowhere'"):
        Roster.model_validate(data)
