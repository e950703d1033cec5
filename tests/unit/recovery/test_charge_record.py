"""A charge as recorded: fixed as it arrived, billing's refunds counted once each."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from services.common.contract.events import ChargePosted, ChargeRefunded
from services.recovery.domain import ChargeAssessed
from services.recovery.domain.charge_record import charge_record

from .builders import T0

POSTED = ChargePosted(charge_id="ch-1", customer_id="c-1", amount=Decimal("30.00"), currency="USD", kind="fee",
                      posted_at=T0 - timedelta(days=1))  # fmt: skip


def refund(refund_id: str, amount: str, currency: str = "USD") -> ChargeRefunded:
    return ChargeRefunded(charge_id="ch-1", refund_id=refund_id, amount=Decimal(amount), currency=currency,
                          refunded_at=T0)  # fmt: skip


def test_refunds_before_and_after_the_charge_count_and_a_refund_confirmed_twice_counts_once() -> None:
    record = charge_record([refund("r-1", "5.00"), POSTED, refund("r-2", "2.50"), refund("r-1", "5.00")])
    facts = record.facts()
    assert facts is not None
    assert facts.refunded_amount == Decimal("7.50")


def test_a_refund_in_another_currency_leaves_nothing_to_pay_automatically() -> None:
    facts = charge_record([POSTED, refund("r-1", "1.00", "EUR")]).facts()
    assert facts is not None
    assert facts.refunded_amount == Decimal("30.00")


def test_the_usual_amounts_are_those_the_charge_came_with_and_a_later_posting_changes_nothing() -> None:
    assessed = ChargeAssessed(charge_id="ch-1", usual_all_amount=Decimal("3.00"))
    again = POSTED.model_copy(update={"amount": Decimal("99.00")})
    facts = charge_record([POSTED, assessed, again]).facts()
    assert facts is not None
    assert (facts.amount, facts.usual_all_amount, facts.usual_customer_amount) == (
        Decimal("30.00"),
        Decimal("3.00"),
        None,
    )


def test_a_charge_not_posted_yet_has_no_facts_but_keeps_its_refunds() -> None:
    record = charge_record([refund("r-1", "5.00")])
    assert record.facts() is None
    record.posted = charge_record([POSTED]).posted
    facts = record.facts()
    assert facts is not None
    assert facts.refunded_amount == Decimal("5.00")
