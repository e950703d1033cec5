"""repeat-contact: at three contacts a person takes it as high, and an effort voucher is owed."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from services.common.contract.events import (
    CaseEscalated,
    ComplaintFiled,
    DecisionMade,
    EventData,
    Reason,
    Remedy,
)
from services.recovery.domain import AgentDecide, Case, EffortVoucherOwed, Policy

from .builders import T0, charge, complaint, escalation, file, of_type, only, run


def contact(n: int, category: str = "service_failure", **fields: object) -> ComplaintFiled:
    return complaint(category, complaint_id=f"cmp-{n}", filed_at=T0 + timedelta(hours=n), **fields)


def _contacts(count: int, category: str = "service_failure") -> tuple[list[EventData], Case]:
    _, case = file(complaint(category))
    events: list[EventData] = []
    for n in range(2, count + 1):
        events, case = file(contact(n, category), case=case, now=T0 + timedelta(hours=n))
    return events, case


def test_a_second_contact_joins_the_case_without_escalating_again() -> None:
    events, case = _contacts(2)
    assert [type(e).__name__ for e in events] == ["ContactAdded"]
    assert case.contacts == 2
    assert case.escalation is not None
    assert case.escalation.priority == "normal"
    assert case.effort_voucher_owed is None


def test_a_third_contact_raises_the_escalation_to_high_and_owes_a_voucher() -> None:
    events, case = _contacts(3)
    raised = only(events, CaseEscalated)
    assert (raised.reason.code, raised.priority) == ("repeat_contact", "high")
    assert raised.assignee == case.owner.id
    assert raised.complaint_id == "cmp-3"
    owed = only(events, EffortVoucherOwed)
    assert (owed.amount, owed.currency) == (Decimal("10.00"), "USD")
    assert case.contacts == 3


def test_a_fourth_contact_does_not_escalate_or_owe_again() -> None:
    _, case = _contacts(3)
    events, case = file(contact(4), case=case, now=T0 + timedelta(hours=4))
    assert [type(e).__name__ for e in events] == ["ContactAdded"]


def test_the_effort_voucher_is_added_to_an_agents_decision() -> None:
    _, case = _contacts(3)
    refund = Remedy(type="refund", charge_id="ch-1", amount=Decimal("5.00"), currency="USD")
    command = AgentDecide(agent_id="a7", remedies=(refund,), charge=charge("50.00"))
    events, after = run(case, command, T0 + timedelta(hours=5))
    made = only(events, DecisionMade)
    assert made.decided_by == "agent:a7"
    assert [r.type for r in made.remedies] == ["refund", "voucher"]
    voucher = made.remedies[1]
    assert (voucher.amount, voucher.voucher_code) == (
        Decimal("10.00"),
        "RV-L5MT-UL5B-K6HL",  # pinned: tests/unit/test_pinned_values.py
    )
    assert made.reasons[-1].code == "effort_voucher"
    assert after.effort_voucher_granted


def test_the_effort_voucher_is_added_even_to_a_declined_decision() -> None:
    _, case = _contacts(3)
    no = AgentDecide(agent_id="a7", decline_reason=Reason(code="not_ours", text="Not ours."))
    made = only(run(case, no, T0 + timedelta(hours=5))[0], DecisionMade)
    assert made.outcome == "declined"
    assert [r.type for r in made.remedies] == ["voucher"]


def test_the_effort_voucher_is_in_the_cases_currency() -> None:
    _, case = file(complaint(), charge("60000", "COP", product_type="physical"))
    for n in (2, 3):
        events, case = file(contact(n, "delivery_failed"), case=case, now=T0 + timedelta(hours=n))
    owed = only(events, EffortVoucherOwed)
    assert (owed.amount, owed.currency) == (Decimal("40000"), "COP")


def test_a_repeat_on_a_decided_case_reopens_it_with_a_fresh_deadline() -> None:
    _, case = file(complaint(), charge())
    assert case.status == "decided"
    events, case = file(contact(2, "delivery_failed"), case=case, now=T0 + timedelta(hours=2))
    assert [type(e).__name__ for e in events] == ["ContactAdded"]
    events, case = file(contact(3, "delivery_failed"), case=case, now=T0 + timedelta(hours=3))
    raised = escalation(events)
    assert raised.priority == "high"
    assert raised.due_by == T0 + timedelta(hours=3 + 10)
    assert (case.status, case.sla_deadline) == ("escalated", raised.due_by)


def test_repeat_contact_keeps_an_urgent_escalation_urgent() -> None:
    usual = Decimal(1)
    huge = charge("20000.00", usual_customer_amount=usual)
    _, case = file(complaint("charge_disputed"), huge)
    assert case.escalation is not None
    assert case.escalation.priority == "urgent"
    for n in (2, 3):
        events, case = file(contact(n, "charge_disputed"), case=case, now=T0 + timedelta(hours=n))
    assert not of_type(events, CaseEscalated)
    assert of_type(events, EffortVoucherOwed)


def test_a_case_already_at_the_threshold_escalates_instead_of_deciding() -> None:
    low = Policy(repeat_contact_threshold=2)
    _, case = file(complaint(), policy=low, now=T0)  # waits for the charge
    events, case = file(contact(2, "delivery_failed"), charge(), case=case, policy=low)
    raised = escalation(events)
    assert raised.reason.code == "repeat_contact"
    assert case.charge == charge()
