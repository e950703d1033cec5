"""The ledger's verdicts in full: every field of what ``bound``, ``granted`` and ``checked``
return, written out, so that a change to any of them (a reason dropped, a concession flag
lost, a bound off by one) fails here."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.common.contract.events import Reason, Remedy
from services.recovery.domain import Case, RemedyRejected
from services.recovery.domain.ledger import bound, checked, granted
from services.recovery.domain.verdict import Grant, Refer

from .builders import T0, charge, complaint, file

APOLOGY = Reason(code="r", text="Sorry.")


def refund(amount: str, charge_id: str | None = "ch-1", currency: str = "USD") -> Remedy:
    return Remedy(type="refund", charge_id=charge_id, amount=Decimal(amount), currency=currency, settlement="soon")


def voucher(amount: str) -> Remedy:
    return Remedy(type="voucher", amount=Decimal(amount), currency="USD", voucher_code="V-1", expires_at=T0)


def case_on(amount: str = "10.00", **facts: str) -> Case:
    _, case = file(complaint("service_failure"), charge(amount, **facts))
    assert case.status == "escalated"
    assert case.decisions == ()
    return case


def decided_with_refund() -> Case:
    """A case whose rule refunded its 4.99 charge in full."""
    _, case = file(complaint(), charge("4.99"))
    assert case.status == "decided"
    return case


def test_a_grant_that_fits_exactly_is_kept_as_it_is() -> None:
    grant = Grant("r", (refund("10.00"),), (APOLOGY,), False)
    assert bound(case_on("10.00"), grant) is grant


def test_a_grant_one_cent_over_is_capped_to_what_remains_keeping_rule_and_concession() -> None:
    grant = Grant("rule-x", (refund("10.01"), voucher("5.00")), (APOLOGY,), False)
    capped = bound(case_on("10.00"), grant)
    assert capped == Grant(
        "rule-x",
        (refund("10.00"), voucher("5.00")),
        (
            APOLOGY,
            Reason(
                code="capped_at_remaining",
                text="USD 10.00 is what remains on this charge (USD 10.00 charged),"
                " so that is paid instead of USD 10.01.",
            ),
        ),
        False,
    )


def test_capping_pays_the_remedies_in_order_until_the_budget_is_spent() -> None:
    grant = Grant("r", (refund("6.00"), refund("6.00"), refund("1.00")), (APOLOGY,), True)
    capped = bound(case_on("10.00", refunded_amount="1.00"), grant)
    assert isinstance(capped, Grant)
    # 9.00 left: 6.00, then 3.00, then nothing (a refund of nothing is dropped).
    assert capped.remedies == (refund("6.00"), refund("3.00"))
    assert capped.concession is True
    assert capped.reasons[-1].text == (
        "USD 9.00 is what remains on this charge (USD 10.00 charged, USD 1.00 refunded by billing),"
        " so that is paid instead of USD 13.00."
    )


def test_with_nothing_left_a_service_is_kept_with_the_reason_and_money_is_referred() -> None:
    cancel = Remedy(type="cancellation", charge_id="ch-1")
    case = case_on("10.00", refunded_amount="10.00")
    nothing = Reason(
        code="nothing_left_to_refund",
        text="Nothing is left to refund on this charge: USD 10.00 charged, USD 10.00 refunded by billing.",
    )
    kept = bound(case, Grant("cancel", (cancel, refund("3.00")), (APOLOGY,), False))
    assert kept == Grant("cancel", (cancel,), (APOLOGY, nothing), False)
    assert bound(case, Grant("r", (refund("3.00"), voucher("1.00")), (APOLOGY,))) == Refer(nothing)


def test_a_refund_on_another_charge_is_referred_naming_it() -> None:
    verdict = bound(case_on(), Grant("r", (refund("1.00", charge_id="ch-9"),), (APOLOGY,)))
    assert verdict == Refer(
        Reason(code="not_the_case_charge", text="charge ch-9 is not this case's (its charge is ch-1).")
    )


def test_granted_counts_money_back_in_the_charge_s_currency_on_its_charge_only() -> None:
    case = decided_with_refund()
    assert granted(case) == Decimal("4.99")
    extra = (
        refund("1.00", charge_id=None),  # names no charge: a person's, on the case's charge
        refund("2.00", currency="EUR"),  # another currency: not this charge's money
        refund("4.00", charge_id="ch-9"),  # another charge
        voucher("8.00"),  # not money back
        Remedy(type="charge_waiver", charge_id="ch-1", amount=Decimal("0.50"), currency="USD"),
    )
    made = case.decisions[0]
    more = made.model_copy(update={"remedies": (*made.remedies, *extra)})
    assert granted(case.model_copy(update={"decisions": (*case.decisions, more)})) == Decimal("11.48")


def test_granted_is_zero_without_a_charge() -> None:
    _, case = file(complaint("other", charge_id=None))
    assert granted(case) == 0


def test_checked_names_the_field_and_the_problem() -> None:
    case = case_on("10.00")
    with pytest.raises(RemedyRejected) as refused:
        checked(case, [voucher("1.00"), refund("1.00", charge_id="ch-9")])
    assert refused.value.field == "remedies[1].charge_id"
    assert str(refused.value) == "remedies[1].charge_id: charge ch-9 is not this case's (its charge is ch-1)."


def test_checked_refuses_money_back_passing_what_remains_and_lets_vouchers_through() -> None:
    case = case_on("10.00")
    assert checked(case, [refund("10.00"), voucher("50.00")]) == (refund("10.00"), voucher("50.00"))
    with pytest.raises(RemedyRejected) as refused:
        checked(case, [voucher("50.00"), refund("6.00"), refund("4.01")])
    assert refused.value.field == "remedies[2].amount"
