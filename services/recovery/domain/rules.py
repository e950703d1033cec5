"""The category rules of the policy (docs/policy.md), in its order: each turns a situation into a verdict.

Which rule applies is decided by the complaint's category; the guardrail and the
repeat-contact rule come after (see ``settle.py``). Limits are compared inclusively (an
amount *at* the limit is within it) in the currency of the money in question; a currency
without limits refers the case (``currency_without_limits``).
"""

from __future__ import annotations

from decimal import Decimal

from services.common.contract.events import ComplaintFiled
from services.common.contract.money import quantize
from services.recovery.domain import build
from services.recovery.domain.anomaly import is_anomalous, usual_amount
from services.recovery.domain.policy import CurrencyLimits
from services.recovery.domain.remedies import charge_waiver, money_text, refund, voucher_expiry
from services.recovery.domain.rules_goods import cancellation, defective_product
from services.recovery.domain.verdict import (
    Grant,
    Refer,
    Situation,
    Verdict,
    limits_or_refer,
    refer,
)


def needs_charge(complaint: ComplaintFiled) -> bool:
    """Whether the category's rule reads the charge (so a complaint waits for it)."""
    match complaint.category:
        case "delivery_failed" | "charge_disputed" | "cancellation":
            return True
        case "damaged_item":
            return True  # a claim about a charge is refunded on it, so bounded by it
        case "defective_product":
            return complaint.purchased_at is None or complaint.remedy_preference == "refund"
    return False


def failed_delivery(s: Situation) -> Verdict:
    """A digital product that never worked: refund the whole charge at once.

    Needs the charge, with ``product_type`` digital and an amount of at most
    ``auto_refund_limit``; the refund carries the policy's settlement time. Goods or a
    service that failed to arrive, or a bigger charge, go to a person.
    """
    charge = s.charge
    if charge is None:
        return refer("charge_not_found", "The charge complained about is not known.")
    if charge.product_type != "digital":
        return refer("not_digital", "A failed delivery of goods or a service needs a person.")
    limits = limits_or_refer(s, charge.currency)
    if isinstance(limits, Refer):
        return limits
    money = money_text(charge.amount, charge.currency)
    if charge.amount > limits.auto_refund_limit:
        return refer("over_auto_refund_limit", f"{money} is over the automatic refund limit.")
    return Grant(
        rule="failed-delivery",
        remedies=(refund(charge.charge_id, charge.amount, charge.currency, _settlement(s)),),
        reasons=(
            build.reason(
                code="failed_delivery",
                text=f"The digital product did not work; the whole {money} is refunded.",
            ),
        ),
    )


def charge_disputed(s: Situation) -> Verdict:
    """Micro-claim first, then charge-anomaly, else a person.

    micro-claim: a disputed charge of at most ``micro_claim_limit`` is waived (taken off
    the bill), since handling the claim costs more (the telco story). charge-anomaly: a charge
    over ``anomaly_multiple`` times its usual amount (see ``anomaly.py``) gets the part
    above the usual amount refunded, quantized; when that part is over
    ``anomaly_auto_limit`` it goes to a supervisor as urgent.
    """
    charge = s.charge
    if charge is None:
        return refer("charge_not_found", "The disputed charge is not known.")
    limits = limits_or_refer(s, charge.currency)
    if isinstance(limits, Refer):
        return limits
    money = money_text(charge.amount, charge.currency)
    if charge.amount <= limits.micro_claim_limit:
        return Grant(
            rule="micro-claim",
            remedies=(charge_waiver(charge.charge_id, charge.amount, charge.currency),),
            reasons=(
                build.reason(
                    code="micro_claim",
                    text=f"The charge of {money} is taken off the bill; thank you for telling us.",
                ),
            ),
        )
    usual = usual_amount(charge)
    if usual is None or not is_anomalous(charge, s.policy):
        return refer("dispute_needs_review", f"The dispute of {money} needs a person to look.")
    return _anomaly_refund(s, quantize(charge.amount - usual, charge.currency), usual, limits)


def _anomaly_refund(s: Situation, excess: Decimal, usual: Decimal, limits: CurrencyLimits) -> Verdict:
    charge = s.charge
    assert charge is not None  # the caller has checked; mypy cannot see it
    back = money_text(excess, charge.currency)
    if excess > limits.anomaly_auto_limit:
        return refer(
            "anomaly_over_auto_limit",
            f"The charge is far out of line and {back} to refund is over the automatic limit.",
            "urgent",
        )
    return Grant(
        rule="charge-anomaly",
        remedies=(refund(charge.charge_id, excess, charge.currency, _settlement(s)),),
        reasons=(
            build.reason(
                code="charge_anomaly",
                text=(
                    f"The charge of {money_text(charge.amount, charge.currency)} is over "
                    f"{s.policy.anomaly_multiple} times the usual "
                    f"{money_text(usual, charge.currency)}; the {back} above it is refunded."
                ),
            ),
        ),
    )


def damaged_item(s: Situation) -> Verdict:
    """Refund the claim (or the charge, where no amount is claimed) plus a goodwill voucher.

    The voucher is ``goodwill_percent`` of the claim, capped at ``goodwill_cap`` and valid
    ``voucher_valid_days``; none when it rounds to nothing. Over ``damage_auto_limit``: a
    person decides. A claim about a charge is refunded on it, so held to what remains on it
    (``ledger.bound``, applied after the rule); a claim about no charge is bounded by the
    limit alone.
    """
    complaint, charge = s.complaint, s.charge
    if complaint.claimed_amount is not None and complaint.currency is not None:
        claim, currency = complaint.claimed_amount, complaint.currency
    elif charge is not None:
        claim, currency = charge.amount, charge.currency
    else:
        return refer("no_claimed_amount", "Neither a claimed amount nor a known charge.")
    limits = limits_or_refer(s, currency)
    if isinstance(limits, Refer):
        return limits
    money = money_text(claim, currency)
    if claim > limits.damage_auto_limit:
        return refer("over_damage_auto_limit", f"A claim of {money} is over the automatic limit.")
    remedies = [refund(complaint.charge_id, claim, currency, _settlement(s))]
    reasons = [build.reason(code="damaged_item", text=f"The damage claim of {money} is refunded.")]
    goodwill = quantize(min(claim * s.policy.goodwill_percent / 100, limits.goodwill_cap), currency)
    if goodwill > 0:
        expires = voucher_expiry(s.now, s.policy.voucher_valid_days)
        remedies.append(s.mint.issue(goodwill, currency, expires))
        reasons.append(
            build.reason(
                code="goodwill_voucher",
                text=f"A goodwill voucher of {money_text(goodwill, currency)} for the trouble.",
            )
        )
    return Grant(rule="damaged-item", remedies=tuple(remedies), reasons=tuple(reasons))


def fallback(s: Situation) -> Verdict:
    """Service failures and anything else: a person decides, with the SLA running."""
    return refer("needs_person", f"A {s.complaint.category.replace('_', ' ')} needs a person.")


def rule_for(s: Situation) -> Verdict:
    """The verdict of the rule for the complaint's category (the policy's order)."""
    if s.charge is not None and s.charge.customer_id != s.complaint.customer.id:
        return refer("charge_of_another_customer", "The charge is not on this customer's account.")
    match s.complaint.category:
        case "delivery_failed":
            return failed_delivery(s)
        case "charge_disputed":
            return charge_disputed(s)
        case "damaged_item":
            return damaged_item(s)
        case "defective_product":
            return defective_product(s)
        case "cancellation":
            return cancellation(s)
    return fallback(s)


def _settlement(s: Situation) -> str:
    return s.policy.refund_settlement
