"""The remedy ledger of a charge: refunds and waivers never pass what remains on it."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.common.contract.events import ChargeFlagged, DecisionMade, EventData, Reason, Remedy
from services.recovery.domain import (
    AgentDecide,
    Case,
    ChargeArrived,
    ChargeLinked,
    FireTimer,
    FlagCharge,
    InvalidAgentDecision,
    RemedyRejected,
    decide,
)
from services.recovery.domain.ledger import remaining

from .builders import CODES, POLICY, ROSTER, T0, charge, complaint, decision, escalation, file, only, run

LATER = T0 + timedelta(hours=1)


def refund(amount: str, charge_id: str | None = "ch-1", currency: str = "USD") -> Remedy:
    return Remedy(type="refund", charge_id=charge_id, amount=Decimal(amount), currency=currency, settlement="soon")


def escalated(amount: str = "100.00", **facts: Any) -> Case:
    _, case = file(complaint("service_failure"), charge(amount, **facts))
    assert case.status == "escalated"
    return case


def agent(case: Case, *remedies: Remedy, **fields: Any) -> tuple[list[EventData], Case]:
    return run(case, AgentDecide(agent_id="ana", remedies=remedies, **fields), LATER)


# ------------------------------------------------------------------ rules


def test_a_rule_pays_what_remains_when_billing_has_refunded_part_of_the_charge() -> None:
    events, case = file(complaint(), charge("4.99", refunded_amount="3.00"))
    made = decision(events)
    assert made.policy.rule == "failed-delivery"
    assert [(r.type, r.amount, r.charge_id) for r in made.remedies] == [("refund", Decimal("1.99"), "ch-1")]
    assert [r.code for r in made.reasons] == ["failed_delivery", "capped_at_remaining"]
    assert "USD 1.99" in made.reasons[-1].text
    assert "USD 3.00 refunded by billing" in made.reasons[-1].text
    assert remaining(case) == 0


def test_a_damage_claim_larger_than_its_charge_refunds_the_charge_and_keeps_the_goodwill() -> None:
    claim = complaint("damaged_item", claimed_amount="900.00", currency="USD")
    made = decision(file(claim, charge("300.00", product_type="physical"))[0])
    assert [(r.type, r.amount) for r in made.remedies] == [
        ("refund", Decimal("300.00")),
        ("voucher", Decimal("180.00")),
    ]
    assert made.reasons[-1].code == "capped_at_remaining"


def test_a_damage_claim_about_no_charge_is_bounded_by_the_rule_s_limit_alone() -> None:
    claim = complaint("damaged_item", claimed_amount="1500.00", currency="USD", charge_id=None, order_id="o-1")
    made = decision(file(claim)[0])
    assert made.remedies[0].amount == Decimal("1500.00")
    assert [r.code for r in made.reasons] == ["damaged_item", "goodwill_voucher"]


def test_a_damage_claim_in_another_currency_than_its_charge_goes_to_a_person() -> None:
    claim = complaint("damaged_item", claimed_amount="20.00", currency="EUR")
    raised = escalation(file(claim, charge("300.00", product_type="physical"))[0])
    assert raised.reason.code == "not_the_charge_currency"


def test_a_damage_claim_about_a_charge_that_never_came_goes_to_a_person() -> None:
    claim = complaint("damaged_item", claimed_amount="20.00", currency="USD")
    _, case = file(claim)
    assert case.awaiting_charge_until is not None
    wait = FireTimer(kind="charge_wait", due_at=case.awaiting_charge_until)
    events, _ = run(case, wait, case.awaiting_charge_until)
    assert escalation(events).reason.code == "charge_not_found"


def test_a_rule_escalates_when_nothing_remains_on_the_charge() -> None:
    events, _ = file(complaint("charge_disputed"), charge("2.50", refunded_amount="2.50"))
    raised = escalation(events)
    assert (raised.reason.code, raised.priority) == ("nothing_left_to_refund", "normal")
    assert "USD 2.50 refunded by billing" in raised.reason.text


def test_a_cancellation_is_confirmed_without_a_refund_when_nothing_remains() -> None:
    charged = charge("30.00", kind="subscription", posted_at=T0 - timedelta(days=10), refunded_amount="30.00")
    made = decision(file(complaint("cancellation"), charged)[0])
    assert [r.type for r in made.remedies] == ["cancellation"]
    assert [r.code for r in made.reasons] == ["cancellation", "unused_period", "nothing_left_to_refund"]


def test_the_anomaly_refund_is_capped_at_what_remains() -> None:
    shipping = charge("7455.00", kind="shipping", product_type="physical", usual_all_amount="12.00",
                      refunded_amount="7000.00")  # fmt: skip
    made = decision(file(complaint("charge_disputed"), shipping)[0])
    assert made.policy.rule == "charge-anomaly"
    assert [r.amount for r in made.remedies] == [Decimal("455.00")]


def test_a_charge_flag_does_not_depend_on_the_ledger() -> None:
    odd = charge("7455.00", kind="shipping", usual_all_amount="12.00", refunded_amount="7455.00")
    assert [type(e) for e in decide(None, FlagCharge(charge=odd), T0, POLICY, ROSTER, CODES)] == [ChargeFlagged]


def test_a_decision_after_billing_refunded_records_the_charge_s_ledger_first() -> None:
    # The case waited; billing refunded 1.00 before the charge came (read with the charge).
    _, case = file(complaint())
    events, case = run(case, ChargeArrived(charge=charge("4.99", refunded_amount="1.00")), LATER)
    assert [type(e) for e in events] == [ChargeLinked, DecisionMade]
    assert only(events, DecisionMade).remedies[0].amount == Decimal("3.99")


# ------------------------------------------------------------------ people


def test_an_agent_may_refund_up_to_what_remains_in_parts() -> None:
    events, case = agent(escalated("100.00", refunded_amount="40.00"), refund("35.00"), refund("25.00"))
    assert [r.amount for r in decision(events).remedies] == [Decimal("35.00"), Decimal("25.00")]
    assert remaining(case) == 0


def test_an_agent_is_refused_more_than_remains_naming_the_field() -> None:
    with pytest.raises(RemedyRejected) as refused:
        agent(escalated("100.00", refunded_amount="40.00"), refund("35.00"), refund("25.01"))
    assert refused.value.field == "remedies[1].amount"
    assert str(refused.value).startswith("remedies[1].amount: refunds and waivers of USD 60.01 pass the USD 60.00")
    assert isinstance(refused.value, InvalidAgentDecision)


def test_an_agent_is_refused_a_remedy_on_another_charge() -> None:
    with pytest.raises(RemedyRejected) as refused:
        agent(escalated(), refund("5.00", charge_id="ch-2"))
    assert refused.value.field == "remedies[0].charge_id"


def test_an_agent_is_refused_a_refund_in_another_currency() -> None:
    with pytest.raises(RemedyRejected) as refused:
        agent(escalated(), Remedy(type="repair"), refund("5.00", currency="EUR"))
    assert refused.value.field == "remedies[1].currency"


def test_an_agent_is_refused_a_refund_on_a_charge_not_posted_yet() -> None:
    _, case = file(complaint("service_failure"))
    with pytest.raises(RemedyRejected) as refused:
        agent(case, refund("5.00"))
    assert refused.value.field == "remedies[0].charge_id"


def test_an_agent_is_refused_a_refund_on_another_customer_s_charge() -> None:
    with pytest.raises(RemedyRejected) as refused:
        agent(escalated(customer_id="someone-else"), refund("5.00"))
    assert refused.value.field == "remedies[0].charge_id"


def test_an_agent_s_refund_naming_no_charge_is_on_the_case_s_charge_and_counts() -> None:
    events, case = agent(escalated("10.00"), refund("10.00", charge_id=None))
    assert decision(events).remedies[0].charge_id == "ch-1"
    assert remaining(case) == 0


def test_money_granted_by_an_earlier_decision_on_the_case_counts() -> None:
    # Decided by policy (refund of 4.99), reopened by repeat contacts, then a person decides.
    _, case = file(complaint(), charge("4.99"))
    for n in (2, 3):
        _, case = file(complaint(complaint_id=f"c{n}", filed_at=T0 + timedelta(hours=n)), case=case)
    assert case.status == "escalated"
    with pytest.raises(RemedyRejected, match=r"USD 4\.99 refunded or waived by earlier decisions"):
        agent(case, refund("0.01"))
    made = decision(agent(case, Remedy(type="replacement"))[0])
    assert [r.type for r in made.remedies] == ["replacement", "voucher"]  # the effort voucher


def test_an_agent_decides_on_the_ledger_read_now() -> None:
    case = escalated("100.00")
    fresh = charge("100.00", refunded_amount="90.00")
    with pytest.raises(RemedyRejected):
        agent(case, refund("20.00"), charge=fresh)
    events, after = agent(case, refund("10.00"), charge=fresh)
    linked = only(events, ChargeLinked)
    assert linked.charge.refunded_amount == Decimal("90.00")
    assert after.charge is not None
    assert case.charge is not None
    assert after.charge == case.charge.model_copy(update={"refunded_amount": Decimal("90.00")})


def test_a_declined_case_needs_no_ledger() -> None:
    no = Reason(code="not_ours", text="Not ours.")
    made = decision(agent(escalated("1.00", refunded_amount="1.00"), decline_reason=no)[0])
    assert made.outcome == "declined"


def test_the_service_issues_the_code_of_a_person_s_voucher() -> None:
    typed = Remedy(type="voucher", amount=Decimal("5.00"), currency="USD", voucher_code="AGENT-12345678",
                   expires_at=T0 + timedelta(days=30))  # fmt: skip
    case = escalated()
    made = decision(agent(case, typed)[0])
    assert made.remedies[0].voucher_code == "RV-L5MT-UL5B-K6HL"  # pinned: tests/unit/test_pinned_values.py
    assert (made.remedies[0].amount, made.remedies[0].expires_at) == (typed.amount, typed.expires_at)
