"""The charge-anomaly test, shared by disputes and by the check of every arriving charge.

A charge is an anomaly when it is over ``anomaly_multiple`` times the usual amount: the
median of the customer's own charges of that kind; or, for the kinds whose amounts do not
depend on the product (fees, shipping, usage, long distance, late fees) and only where the
customer has no history, the median across all customers. Purchases and subscriptions are
never compared across customers: a laptop is not an anomaly next to a cable. The
toilet-paper story (docs/policy.md): US$7,455 shipping on three cartons.
"""

from __future__ import annotations

from decimal import Decimal

from services.common.contract.events import ChargeFlagged
from services.recovery.domain import build
from services.recovery.domain.facts import ChargeFacts
from services.recovery.domain.policy import Policy
from services.recovery.domain.remedies import money_text

CROSS_CUSTOMER_KINDS = frozenset({"fee", "shipping", "usage", "long_distance", "late_fee"})


def usual_amount(charge: ChargeFacts) -> Decimal | None:
    """The amount this charge is compared with, or None when there is nothing to compare."""
    if charge.usual_customer_amount is not None:
        return charge.usual_customer_amount
    if charge.kind in CROSS_CUSTOMER_KINDS:
        return charge.usual_all_amount
    return None


def is_anomalous(charge: ChargeFacts, policy: Policy) -> bool:
    """True when the charge is strictly over ``anomaly_multiple`` times its usual amount."""
    usual = usual_amount(charge)
    return usual is not None and charge.amount > policy.anomaly_multiple * usual


def assess_charge(charge: ChargeFacts, policy: Policy) -> ChargeFlagged | None:
    """Flag a charge that looks wrong on arrival, before anyone complains (or None)."""
    usual = usual_amount(charge)
    if usual is None or not is_anomalous(charge, policy):
        return None
    whose = "this customer's" if charge.usual_customer_amount is not None else "all customers'"
    return build.charge_flagged(
        charge_id=charge.charge_id,
        customer_id=charge.customer_id,
        amount=charge.amount,
        currency=charge.currency,
        reason=build.reason(
            code="charge_anomaly",
            text=(
                f"The {charge.kind} charge of {money_text(charge.amount, charge.currency)} is "
                f"over {policy.anomaly_multiple} times {whose} usual "
                f"{money_text(usual, charge.currency)}."
            ),
        ),
    )
