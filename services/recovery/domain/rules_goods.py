"""The rules about goods and subscriptions: defective products and cancellations.

The phone story (docs/policy.md): by law a defective product is repaired or replaced first,
a refund only where neither is possible ("skip the procedures"). The cancellation story:
a cancellation is confirmed at once, with no retention loop.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from services.common.contract.events import Reason, Remedy
from services.common.contract.money import quantize
from services.recovery.domain import build
from services.recovery.domain.remedies import money_text, refund, service
from services.recovery.domain.verdict import (
    Grant,
    Refer,
    Situation,
    Verdict,
    limits_or_refer,
    refer,
)


def add_years(moment: datetime, years: int) -> datetime:
    """``moment`` plus whole calendar years; 29 February becomes 1 March.

    1 March rather than 28 February because the guarantee should not end a day early.
    """
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:
        return moment.replace(year=moment.year + years, month=3, day=1)


def defective_product(s: Situation) -> Verdict:
    """Within the legal guarantee: the customer's preferred remedy, at once.

    The guarantee runs ``legal_guarantee_years`` from ``purchased_at`` (or, where the
    complaint gives none, the charge's ``posted_at``) and is judged at ``filed_at``: a
    customer who complained in time is not penalised for our delay. Preference ``repair``:
    repair. ``replacement``, ``credit`` or none: replacement. ``refund``: a refund when the
    charge is known and at most ``auto_refund_limit``, else a replacement with a reason
    saying why. Outside the guarantee, or with no purchase date at all: a person decides.
    """
    complaint, charge = s.complaint, s.charge
    purchased = complaint.purchased_at or (charge.posted_at if charge else None)
    if purchased is None:
        return refer("purchase_date_unknown", "No purchase date to check the guarantee against.")
    ends = add_years(purchased, s.policy.legal_guarantee_years)
    if complaint.filed_at > ends:
        return refer(
            "outside_guarantee",
            f"Filed after the {s.policy.legal_guarantee_years}-year legal guarantee ended.",
        )
    charge_id = complaint.charge_id
    guarantee = build.reason(
        code="legal_guarantee",
        text=f"The product is within the {s.policy.legal_guarantee_years}-year legal guarantee.",
    )
    preference = complaint.remedy_preference
    if preference == "repair":
        return _grant(service("repair", charge_id), guarantee, "The product is repaired.")
    if preference == "refund" and charge is not None:
        limits = limits_or_refer(s, charge.currency)
        if isinstance(limits, Refer):
            return limits
        if charge.amount <= limits.auto_refund_limit:
            money = money_text(charge.amount, charge.currency)
            remedy = refund(charge.charge_id, charge.amount, charge.currency, s.policy.refund_settlement)
            return _grant(remedy, guarantee, f"The {money} is refunded, as preferred.")
    if preference == "refund":
        return _grant(
            service("replacement", charge_id),
            guarantee,
            "The product is replaced: by law a repair or a replacement comes before a refund, "
            "and a person can still arrange a refund if neither works.",
            code="replacement_before_refund",
        )
    return _grant(service("replacement", charge_id), guarantee, "The product is replaced.")


def _grant(remedy: Remedy, guarantee: Reason, text: str, code: str = "defective_product") -> Grant:
    return Grant(
        rule="defective-product",
        remedies=(remedy,),
        reasons=(guarantee, build.reason(code=code, text=text)),
    )


def unused_refund(s: Situation) -> Decimal:
    """The unused part of the subscription period the charge paid for (0 if none).

    Whole days used are counted from ``posted_at`` to ``filed_at`` (a day begun is not
    charged), so ``amount x (period - days used) / period``, quantized.
    """
    charge = s.charge
    if charge is None or charge.kind != "subscription":
        return Decimal(0)
    period = s.policy.subscription_period_days
    used = max((s.complaint.filed_at - charge.posted_at) // timedelta(days=1), 0)
    remaining = max(period - used, 0)
    return quantize(charge.amount * remaining / period, charge.currency)


def cancellation(s: Situation) -> Verdict:
    """Confirm the cancellation at once; refund the unused part of a subscription period.

    Not a concession (the guardrail neither holds nor counts it): leaving is a right.
    """
    charge_id = s.complaint.charge_id
    remedies: list[Remedy] = [service("cancellation", charge_id)]
    reasons = [build.reason(code="cancellation", text="The cancellation is confirmed, effective now.")]
    back = unused_refund(s)
    if back > 0 and s.charge is not None:
        currency = s.charge.currency
        remedies.append(refund(charge_id, back, currency, s.policy.refund_settlement))
        reasons.append(
            build.reason(
                code="unused_period",
                text=f"The unused part of the period, {money_text(back, currency)}, is refunded.",
            )
        )
    return Grant(rule="cancellation", remedies=tuple(remedies), reasons=tuple(reasons), concession=False)
