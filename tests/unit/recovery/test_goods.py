"""damaged-item, defective-product and cancellation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.common.contract.events import ComplaintFiled

from .builders import (
    CURRENCIES,
    POLICY,
    T0,
    charge,
    complaint,
    decision,
    escalation,
    file,
    history,
    limits,
    one_unit,
)

# ------------------------------------------------------------------ damaged-item


def claim(amount: str, currency: str = "USD") -> ComplaintFiled:
    """A damage claim about no charge (an order, say): bounded by the rule's limit alone."""
    return complaint("damaged_item", claimed_amount=amount, currency=currency, charge_id=None, order_id="o-1")


def test_refunds_a_damage_claim_with_a_goodwill_voucher_of_twenty_percent() -> None:
    the_complaint = complaint("damaged_item", claimed_amount="120.00", currency="USD")
    events, case = file(the_complaint, charge("300.00", product_type="physical"))
    made = decision(events)
    assert made.policy.rule == "damaged-item"
    refund, voucher = made.remedies
    assert (refund.type, refund.amount, refund.charge_id) == ("refund", Decimal("120.00"), "ch-1")
    assert (voucher.type, voucher.amount, voucher.currency) == ("voucher", Decimal("24.00"), "USD")
    assert voucher.voucher_code == "RV-L5MT-UL5B-K6HL"  # pinned: tests/unit/test_pinned_values.py
    assert voucher.expires_at == T0 + timedelta(days=365)
    assert case.vouchers_issued == 1


@pytest.mark.parametrize("currency", CURRENCIES)
def test_refunds_a_damage_claim_up_to_the_limit_with_the_capped_voucher(currency: str) -> None:
    at_limit = limits(currency, "damage_auto_limit")
    refund, voucher = decision(file(claim(str(at_limit), currency))[0]).remedies
    assert refund.amount == at_limit
    # 20 % of 1,500.00 is 300.00, over the 200.00 cap.
    assert voucher.amount == limits(currency, "goodwill_cap")


@pytest.mark.parametrize("currency", CURRENCIES)
def test_escalates_a_damage_claim_one_minor_unit_over_the_limit(currency: str) -> None:
    over = limits(currency, "damage_auto_limit") + one_unit(currency)
    assert escalation(file(claim(str(over), currency))[0]).reason.code == "over_damage_auto_limit"


def test_the_goodwill_voucher_is_quantized_to_the_currency() -> None:
    assert decision(file(claim("10.01"))[0]).remedies[1].amount == Decimal("2.00")  # 2.002


def test_no_voucher_when_the_goodwill_rounds_to_nothing() -> None:
    assert [r.type for r in decision(file(claim("0.02"))[0]).remedies] == ["refund"]


def test_a_damage_claim_without_an_amount_claims_the_charge() -> None:
    the_complaint = complaint("damaged_item")
    made = decision(file(the_complaint, charge("30.00", product_type="physical"))[0])
    assert [r.amount for r in made.remedies] == [Decimal("30.00"), Decimal("6.00")]


def test_a_damage_claim_with_neither_amount_nor_charge_escalates() -> None:
    raised = escalation(file(complaint("damaged_item", charge_id=None, order_id="o-1"))[0])
    assert raised.reason.code == "no_claimed_amount"


# ------------------------------------------------------------------ defective-product

PURCHASED = T0 - timedelta(days=400)


def defective(preference: str | None = None, **fields: object) -> ComplaintFiled:
    fields.setdefault("purchased_at", PURCHASED)
    return complaint("defective_product", remedy_preference=preference, **fields)


@pytest.mark.parametrize(
    ("preference", "remedy"),
    [("repair", "repair"), ("replacement", "replacement"), (None, "replacement"),
     ("credit", "replacement")],
)  # fmt: skip
def test_offers_the_preferred_repair_or_replacement_within_the_guarantee(preference: str | None, remedy: str) -> None:
    made = decision(file(defective(preference))[0])
    assert made.policy.rule == "defective-product"
    assert [(r.type, r.charge_id) for r in made.remedies] == [(remedy, "ch-1")]
    assert made.reasons[0].code == "legal_guarantee"


@pytest.mark.parametrize("currency", CURRENCIES)
def test_refunds_a_defective_product_as_preferred_up_to_the_refund_limit(currency: str) -> None:
    at_limit = limits(currency, "auto_refund_limit")
    made = decision(file(defective("refund"), charge(at_limit, currency))[0])
    assert [(r.type, r.amount) for r in made.remedies] == [("refund", at_limit)]


@pytest.mark.parametrize("currency", CURRENCIES)
def test_replaces_rather_than_refunds_a_defective_product_over_the_limit(currency: str) -> None:
    over = limits(currency, "auto_refund_limit") + one_unit(currency)
    made = decision(file(defective("refund"), charge(over, currency))[0])
    assert [r.type for r in made.remedies] == ["replacement"]
    assert made.reasons[1].code == "replacement_before_refund"
    assert "by law" in made.reasons[1].text


def test_the_guarantee_still_holds_on_its_last_instant() -> None:
    filed = T0
    bought = filed.replace(year=filed.year - 3)
    made = decision(file(defective(purchased_at=bought, filed_at=filed))[0])
    assert made.remedies[0].type == "replacement"


def test_escalates_a_defective_product_just_outside_the_guarantee() -> None:
    bought = T0.replace(year=T0.year - 3) - timedelta(microseconds=1)
    raised = escalation(file(defective(purchased_at=bought))[0])
    assert raised.reason.code == "outside_guarantee"


def test_a_guarantee_from_29_february_runs_to_1_march() -> None:
    bought = datetime(2024, 2, 29, 12, tzinfo=UTC)
    on_time = datetime(2027, 3, 1, 12, tzinfo=UTC)
    made = decision(file(defective(purchased_at=bought, filed_at=on_time))[0])
    assert [r.type for r in made.remedies] == ["replacement"]
    late = on_time + timedelta(microseconds=1)
    raised = escalation(file(defective(purchased_at=bought, filed_at=late))[0])
    assert raised.reason.code == "outside_guarantee"


def test_the_charge_date_stands_in_for_an_unstated_purchase_date() -> None:
    old = charge("20.00", posted_at=T0 - timedelta(days=4 * 365))
    raised = escalation(file(defective(purchased_at=None), old)[0])
    assert raised.reason.code == "outside_guarantee"


def test_a_defective_product_with_no_purchase_date_escalates() -> None:
    lone = defective(purchased_at=None, charge_id=None, order_id="o-1")
    assert escalation(file(lone)[0]).reason.code == "purchase_date_unknown"


# ------------------------------------------------------------------ cancellation


def test_confirms_a_cancellation_at_once() -> None:
    made = decision(file(complaint("cancellation"), charge("30.00", kind="purchase"))[0])
    assert made.policy.rule == "cancellation"
    assert [(r.type, r.charge_id) for r in made.remedies] == [("cancellation", "ch-1")]


def test_refunds_the_unused_part_of_a_subscription_period() -> None:
    month = charge("30.00", kind="subscription", posted_at=T0 - timedelta(days=10, hours=3))
    made = decision(file(complaint("cancellation"), month)[0])
    cancel, refund = made.remedies
    assert cancel.type == "cancellation"
    assert (refund.type, refund.amount, refund.settlement) == (
        "refund",
        Decimal("20.00"),
        POLICY.refund_settlement,
    )


def test_the_unused_part_is_quantized_in_the_charge_currency() -> None:
    month = charge("10.00", kind="subscription", posted_at=T0 - timedelta(days=1))
    assert decision(file(complaint("cancellation"), month)[0]).remedies[1].amount == Decimal(
        "9.67"
    )  # 10 x 29 / 30 = 9.666...


def test_a_subscription_past_its_period_is_cancelled_without_a_refund() -> None:
    month = charge("10.00", kind="subscription", posted_at=T0 - timedelta(days=30))
    assert [r.type for r in decision(file(complaint("cancellation"), month)[0]).remedies] == ["cancellation"]


def test_a_cancellation_is_not_held_back_by_the_guardrail() -> None:
    busy = history(*(T0 - timedelta(days=d) for d in (1, 2, 3, 4)))
    made = decision(file(complaint("cancellation"), charge(kind="subscription"), past=busy)[0])
    assert made.policy.rule == "cancellation"
