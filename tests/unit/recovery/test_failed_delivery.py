"""failed-delivery: a digital product that failed is refunded in full, up to the limit."""

from __future__ import annotations

from decimal import Decimal

import pytest

from .builders import (
    CURRENCIES,
    T0,
    charge,
    complaint,
    decision,
    escalation,
    file,
    limits,
    one_unit,
)


def test_refunds_a_failed_digital_delivery_at_once() -> None:
    events, case = file(complaint(), charge("4.99"))
    made = decision(events)
    assert made.outcome == "resolved"
    assert made.policy.rule == "failed-delivery"
    assert made.decided_by == "policy"
    assert made.within_sla
    assert made.decided_at == T0
    assert [(r.type, r.amount, r.currency, r.charge_id, r.settlement) for r in made.remedies] == [
        ("refund", Decimal("4.99"), "USD", "ch-1", "3-5 business days")
    ]
    assert made.reasons[0].code == "failed_delivery"
    assert made.case_owner == case.owner
    assert case.status == "decided"


@pytest.mark.parametrize("currency", CURRENCIES)
def test_refunds_a_failed_digital_delivery_up_to_the_limit(currency: str) -> None:
    at_limit = limits(currency, "auto_refund_limit")
    made = decision(file(complaint(), charge(at_limit, currency))[0])
    assert made.remedies[0].amount == at_limit


@pytest.mark.parametrize(
    ("currency", "over_text"), [("USD", "USD 50.01"), ("EUR", "EUR 50.01"), ("COP", "COP 200000.01")]
)
def test_escalates_a_failed_delivery_one_minor_unit_over_the_limit(currency: str, over_text: str) -> None:
    over = limits(currency, "auto_refund_limit") + one_unit(currency)
    raised = escalation(file(complaint(), charge(over, currency))[0])
    assert raised.reason.code == "over_auto_refund_limit"
    assert over_text in raised.reason.text
    assert raised.priority == "normal"


@pytest.mark.parametrize("product_type", ["physical", "service", None])
def test_escalates_a_failed_delivery_that_is_not_digital(product_type: str | None) -> None:
    raised = escalation(file(complaint(), charge(product_type=product_type))[0])
    assert raised.reason.code == "not_digital"


def test_escalates_a_failed_delivery_without_a_charge() -> None:
    raised = escalation(file(complaint(charge_id=None, order_id="o-1"))[0])
    assert raised.reason.code == "charge_not_found"
