"""charge_disputed: micro-claim before charge-anomaly; a dispute that is neither escalates."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.common.contract.events import ChargeFlagged
from services.recovery.domain import FlagCharge, assess_charge, decide

from .builders import (
    CODES,
    CURRENCIES,
    POLICY,
    ROSTER,
    T0,
    charge,
    complaint,
    decision,
    escalation,
    file,
    limits,
    one_unit,
)

DISPUTE = complaint("charge_disputed")


@pytest.mark.parametrize("currency", CURRENCIES)
def test_waives_a_disputed_charge_up_to_the_micro_claim_limit(currency: str) -> None:
    at_limit = limits(currency, "micro_claim_limit")
    made = decision(file(DISPUTE, charge(at_limit, currency, kind="usage"))[0])
    assert made.policy.rule == "micro-claim"
    assert [(r.type, r.amount, r.currency, r.charge_id) for r in made.remedies] == [
        ("charge_waiver", at_limit, currency, "ch-1")
    ]
    assert "thank you" in made.reasons[0].text


@pytest.mark.parametrize("currency", CURRENCIES)
def test_a_dispute_one_minor_unit_over_the_micro_limit_needs_another_rule(currency: str) -> None:
    over = limits(currency, "micro_claim_limit") + one_unit(currency)
    raised = escalation(file(DISPUTE, charge(over, currency, kind="usage"))[0])
    assert raised.reason.code == "dispute_needs_review"


def test_micro_claim_comes_before_the_anomaly() -> None:
    small = charge("2.50", kind="fee", usual_customer_amount="0.10")
    assert decision(file(DISPUTE, small)[0]).policy.rule == "micro-claim"


def test_refunds_the_part_of_an_anomalous_charge_above_the_usual_amount() -> None:
    # The toilet-paper story (docs/policy.md): US$7,455 shipping; the customer's usual is US$12.50.
    shipping = charge("7455.00", kind="shipping", usual_customer_amount="12.50")
    made = decision(file(DISPUTE, shipping)[0])
    assert made.policy.rule == "charge-anomaly"
    assert [(r.type, r.amount) for r in made.remedies] == [("refund", Decimal("7442.50"))]
    assert made.remedies[0].settlement == "3-5 business days"


def test_a_charge_at_exactly_ten_times_the_usual_is_not_an_anomaly() -> None:
    raised = escalation(file(DISPUTE, charge("125.00", usual_customer_amount="12.50"))[0])
    assert raised.reason.code == "dispute_needs_review"


def test_a_charge_one_cent_over_ten_times_the_usual_is_an_anomaly() -> None:
    made = decision(file(DISPUTE, charge("125.01", usual_customer_amount="12.50"))[0])
    assert made.remedies[0].amount == Decimal("112.51")


def test_the_refund_of_a_median_between_two_amounts_is_quantized() -> None:
    made = decision(file(DISPUTE, charge("100.00", usual_customer_amount="3.335"))[0])
    assert made.remedies[0].amount == Decimal("96.66")  # 96.665 half-even


@pytest.mark.parametrize("kind", ["fee", "shipping", "usage", "long_distance", "late_fee"])
def test_fees_without_customer_history_compare_with_all_customers(kind: str) -> None:
    made = decision(file(DISPUTE, charge("300.00", kind=kind, usual_all_amount="20.00"))[0])
    assert made.remedies[0].amount == Decimal("280.00")


@pytest.mark.parametrize("kind", ["purchase", "subscription", "other"])
def test_purchases_are_never_compared_across_customers(kind: str) -> None:
    raised = escalation(file(DISPUTE, charge("3000.00", kind=kind, usual_all_amount="5.00"))[0])
    assert raised.reason.code == "dispute_needs_review"


def test_the_customers_own_history_wins_over_all_customers() -> None:
    own = charge("300.00", kind="fee", usual_customer_amount="100.00", usual_all_amount="1.00")
    assert escalation(file(DISPUTE, own)[0]).reason.code == "dispute_needs_review"


@pytest.mark.parametrize("currency", CURRENCIES)
def test_refunds_an_anomaly_up_to_the_anomaly_limit(currency: str) -> None:
    usual = Decimal(1)
    amount = limits(currency, "anomaly_auto_limit") + usual
    made = decision(file(DISPUTE, charge(amount, currency, usual_customer_amount=usual))[0])
    assert made.remedies[0].amount == limits(currency, "anomaly_auto_limit")


@pytest.mark.parametrize("currency", CURRENCIES)
def test_escalates_an_anomaly_over_the_limit_as_urgent_to_a_supervisor(currency: str) -> None:
    usual = Decimal(1)
    amount = limits(currency, "anomaly_auto_limit") + usual + one_unit(currency)
    raised = escalation(file(DISPUTE, charge(amount, currency, usual_customer_amount=usual))[0])
    assert (raised.reason.code, raised.priority) == ("anomaly_over_auto_limit", "urgent")
    assert raised.assignee == "supervisor-james"


def test_flags_an_anomalous_charge_on_arrival() -> None:
    shipping = charge("7455.00", kind="shipping", usual_all_amount="12.50")
    flagged = assess_charge(shipping, POLICY)
    assert flagged is not None
    assert (flagged.charge_id, flagged.amount, flagged.reason.code) == (
        "ch-1",
        Decimal("7455.00"),
        "charge_anomaly",
    )


def test_flag_charge_through_decide_returns_the_flag_or_nothing() -> None:
    odd = charge("7455.00", kind="shipping", usual_customer_amount="12.50")
    assert [type(e) for e in decide(None, FlagCharge(charge=odd), T0, POLICY, ROSTER, CODES)] == [ChargeFlagged]
    usual = charge("12.50", kind="shipping", usual_customer_amount="12.50")
    assert decide(None, FlagCharge(charge=usual), T0, POLICY, ROSTER, CODES) == []


def test_a_usual_charge_is_not_flagged() -> None:
    assert assess_charge(charge("40.00", kind="purchase", usual_all_amount="1.00"), POLICY) is None
