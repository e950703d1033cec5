"""The SLA clock: warning at 80 %, breach at the deadline, the fallback, late complaints."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from services.common.contract.events import (
    CaseEscalated,
    ComplaintFiled,
    DecisionMade,
    EventData,
    Remedy,
    SlaBreached,
    SlaWarning,
)
from services.recovery.domain import AgentDecide, Case, ChargeFacts, ChargeLinked, FireTimer, Timer, pending_timers
from services.recovery.domain.commands import TimerKind

from .builders import (
    CURRENCIES,
    POLICY,
    T0,
    charge,
    complaint,
    decision,
    escalation,
    file,
    limits,
    one_unit,
    only,
    run,
)

WARNING_AT = T0 + timedelta(hours=8)
DEADLINE = T0 + timedelta(hours=10)


def escalated_case(the_complaint: ComplaintFiled | None = None, the_charge: ChargeFacts | None = None) -> Case:
    _, case = file(the_complaint or complaint("service_failure"), the_charge)
    assert case.status == "escalated"
    return case


def fire(
    case: Case, kind: TimerKind, due_at: datetime, now: datetime | None = None, the_charge: ChargeFacts | None = None
) -> tuple[list[EventData], Case]:
    command = FireTimer(kind=kind, due_at=due_at, charge=the_charge)
    return run(case, command, now or due_at)


def test_an_escalated_case_keeps_a_warning_and_a_breach_scheduled() -> None:
    assert pending_timers(escalated_case(), POLICY) == [
        Timer(kind="sla_warning", due_at=WARNING_AT),
        Timer(kind="sla_breach", due_at=DEADLINE),
    ]


def test_a_decided_case_needs_no_timers() -> None:
    _, case = file(complaint(), charge())
    assert pending_timers(case, POLICY) == []


def test_warns_at_eighty_percent_of_the_sla() -> None:
    events, case = fire(escalated_case(), "sla_warning", WARNING_AT)
    warning = only(events, SlaWarning)
    assert (warning.sla_deadline, warning.at) == (DEADLINE, WARNING_AT)
    assert pending_timers(case, POLICY) == [Timer(kind="sla_breach", due_at=DEADLINE)]


def test_a_timer_fired_twice_produces_nothing_the_second_time() -> None:
    _, case = fire(escalated_case(), "sla_warning", WARNING_AT)
    assert fire(case, "sla_warning", WARNING_AT)[0] == []
    _, case = fire(case, "sla_breach", DEADLINE)
    assert fire(case, "sla_breach", DEADLINE)[0] == []


def test_a_timer_fired_early_produces_nothing() -> None:
    case = escalated_case()
    assert fire(case, "sla_warning", WARNING_AT, WARNING_AT - timedelta(seconds=1))[0] == []


def test_a_timer_with_an_outdated_due_time_produces_nothing() -> None:
    assert fire(escalated_case(), "sla_breach", DEADLINE - timedelta(hours=1), DEADLINE)[0] == []


def test_timers_for_a_closed_case_produce_nothing() -> None:
    _, case = file(complaint(), charge())
    assert fire(case, "sla_breach", DEADLINE)[0] == []
    assert fire(case, "sla_warning", WARNING_AT)[0] == []


def test_a_breach_grants_the_claimed_refund_with_an_apology_for_the_delay() -> None:
    claim = complaint("service_failure", claimed_amount="20.00", currency="USD")
    events, case = fire(escalated_case(claim, charge("80.00")), "sla_breach", DEADLINE)
    assert [type(e) for e in events] == [SlaBreached, DecisionMade]
    made = only(events, DecisionMade)
    assert made.policy.rule == "sla-breach-fallback"
    assert made.decided_by == "policy"
    assert made.within_sla is False
    assert made.reasons[0].code == "sla_breached"
    assert [(r.type, r.amount, r.charge_id) for r in made.remedies] == [("refund", Decimal("20.00"), "ch-1")]
    assert case.status == "decided"
    assert pending_timers(case, POLICY) == []


@pytest.mark.parametrize("currency", CURRENCIES)
def test_the_breach_fallback_grants_up_to_its_limit(currency: str) -> None:
    at_limit = limits(currency, "breach_fallback_limit")
    claim = complaint("other", claimed_amount=str(at_limit), currency=currency, charge_id=None)
    made = only(fire(escalated_case(claim), "sla_breach", DEADLINE)[0], DecisionMade)
    assert made.remedies[0].amount == at_limit


@pytest.mark.parametrize("currency", CURRENCIES)
def test_over_the_breach_limit_goes_urgently_to_a_supervisor(currency: str) -> None:
    over = limits(currency, "breach_fallback_limit") + one_unit(currency)
    claim = complaint("other", claimed_amount=str(over), currency=currency, locale="es-CO")
    events, case = fire(escalated_case(claim), "sla_breach", DEADLINE)
    assert [type(e) for e in events] == [SlaBreached, CaseEscalated]
    raised = only(events, CaseEscalated)
    assert (raised.priority, raised.assignee, raised.reason.code) == (
        "urgent",
        "supervisor-carmen",
        "sla_breached",
    )
    assert raised.due_by == DEADLINE
    assert pending_timers(case, POLICY) == []


def test_a_breach_with_no_value_to_grant_goes_to_a_supervisor() -> None:
    events, _ = fire(escalated_case(), "sla_breach", DEADLINE)
    assert only(events, CaseEscalated).priority == "urgent"


@pytest.mark.parametrize(
    ("preference", "remedy"),
    [("repair", "repair"), ("replacement", "replacement"), ("credit", "voucher")],
)
def test_the_breach_fallback_grants_the_preferred_remedy(preference: str, remedy: str) -> None:
    claim = complaint("other", claimed_amount="12.00", currency="EUR", remedy_preference=preference)
    made = only(fire(escalated_case(claim), "sla_breach", DEADLINE)[0], DecisionMade)
    assert [r.type for r in made.remedies] == [remedy]


def test_the_breach_fallback_values_a_claim_without_amount_at_its_charge() -> None:
    _, case = file(complaint(), charge("40.00", product_type="physical"))
    made = only(fire(case, "sla_breach", DEADLINE)[0], DecisionMade)
    assert made.remedies[0].amount == Decimal("40.00")


def test_the_breach_fallback_adds_an_owed_effort_voucher() -> None:
    _, case = file(complaint("other", claimed_amount="5.00", currency="USD"), charge("50.00"))
    for n in (2, 3):
        again = complaint("other", complaint_id=f"c{n}", claimed_amount="5.00", currency="USD")
        _, case = file(again, case=case, now=T0 + timedelta(hours=n))
    made = only(fire(case, "sla_breach", DEADLINE)[0], DecisionMade)
    assert [r.type for r in made.remedies] == ["refund", "voucher"]


def test_the_breach_fallback_pays_what_remains_on_the_charge_and_says_so() -> None:
    claim = complaint("service_failure", claimed_amount="20.00", currency="USD")
    case = escalated_case(claim, charge("30.00"))
    # Billing has refunded 25.00 of the charge since the case linked it.
    events, case = fire(case, "sla_breach", DEADLINE, the_charge=charge("30.00", refunded_amount="25.00"))
    assert [type(e) for e in events] == [SlaBreached, ChargeLinked, DecisionMade]
    made = only(events, DecisionMade)
    assert [(r.type, r.amount) for r in made.remedies] == [("refund", Decimal("5.00"))]
    assert [r.code for r in made.reasons] == ["sla_breached", "capped_at_remaining"]
    assert case.charge is not None
    assert case.charge.refunded_amount == Decimal("25.00")


def test_the_breach_fallback_goes_to_a_supervisor_when_nothing_is_left_on_the_charge() -> None:
    claim = complaint("service_failure", claimed_amount="20.00", currency="USD")
    events, _ = fire(escalated_case(claim, charge("30.00", refunded_amount="30.00")), "sla_breach", DEADLINE)
    assert only(events, CaseEscalated).priority == "urgent"


def test_the_breach_fallback_pays_nothing_on_a_charge_it_has_never_seen() -> None:
    claim = complaint("service_failure", claimed_amount="20.00", currency="USD")
    events, _ = fire(escalated_case(claim), "sla_breach", DEADLINE)
    assert only(events, CaseEscalated).priority == "urgent"


def test_the_breach_fallback_pays_nothing_on_another_customer_s_charge() -> None:
    claim = complaint("service_failure", claimed_amount="20.00", currency="USD")
    case = escalated_case(claim, charge("80.00", customer_id="someone-else"))
    events, _ = fire(case, "sla_breach", DEADLINE)
    assert only(events, CaseEscalated).priority == "urgent"


def test_a_breach_on_a_reopened_case_never_grants_twice_by_machine() -> None:
    _, case = file(complaint(), charge())
    for n in (2, 3):
        again = complaint(complaint_id=f"c{n}", filed_at=T0 + timedelta(hours=n))
        _, case = file(again, case=case)
    deadline = T0 + timedelta(hours=13)
    events, _ = fire(case, "sla_breach", deadline)
    assert only(events, CaseEscalated).priority == "urgent"


def test_an_agent_decision_stops_the_clock_and_is_within_sla_until_the_deadline() -> None:
    command = AgentDecide(agent_id="a1", remedies=(Remedy(type="repair"),))
    events, case = run(escalated_case(), command, DEADLINE)
    assert decision(events).within_sla is True
    assert pending_timers(case, POLICY) == []


def test_a_complaint_filed_long_ago_is_decided_at_once_outside_the_sla() -> None:
    later = DEADLINE + timedelta(hours=1)
    made = decision(file(complaint(), charge(), now=later)[0])
    assert made.within_sla is False
    assert made.decided_at == later


def test_a_late_complaint_that_escalates_is_due_at_once() -> None:
    events, case = file(complaint("other"), now=DEADLINE + timedelta(hours=1))
    assert escalation(events).due_by == DEADLINE
    assert [t.kind for t in pending_timers(case, POLICY)] == ["sla_warning", "sla_breach"]
