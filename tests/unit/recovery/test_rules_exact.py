"""Each rule's outcome in full, written out: the remedies (type, charge, amount, currency,
settlement) and the reasons customers read, word for word, or the referral and why. A rule
change that alters any of it, a reason's text included, fails here; the texts are what the
customer and the agents see, so a change to one is a change to make on purpose."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from services.common.contract.events import CaseEscalated, DecisionMade, EventData
from services.recovery.domain.events import ChargeAwaited

from .builders import T0, charge, complaint, file

LATE = T0 + timedelta(days=2)  # past the charge wait: decided with what is known

# name: (the complaint's fields, the charge's (None: not seen), when it is filed (None: at once))
SCENARIOS: dict[str, tuple[dict[str, Any], dict[str, Any] | None, Any]] = {
    "digital delivery failed": (dict(category="delivery_failed"), dict(amount="4.99"), None),
    "physical delivery failed": (dict(category="delivery_failed"), dict(amount="4.99", product_type="physical"), None),
    "delivery failed, charge never came": (dict(category="delivery_failed"), None, LATE),
    "micro fee disputed": (dict(category="charge_disputed"), dict(amount="2.50", kind="fee", product_type=None), None),
    "disputed charge never came": (dict(category="charge_disputed"), None, LATE),
    "damaged item": (
        dict(category="damaged_item", claimed_amount="50.00", currency="USD"),
        dict(amount="300.00", product_type="physical"),
        None,
    ),
    "defective, no purchase date": (dict(category="defective_product"), None, LATE),
    "defective, repair": (
        dict(category="defective_product", purchased_at=T0 - timedelta(days=100), remedy_preference="repair"),
        None,
        None,
    ),
    "defective, refund": (
        dict(category="defective_product", remedy_preference="refund"),
        dict(amount="40.00", product_type="physical"),
        None,
    ),
    "defective, refund over the limit": (
        dict(category="defective_product", remedy_preference="refund"),
        dict(amount="5000.00", product_type="physical"),
        None,
    ),
    "defective, refund without charge": (
        dict(category="defective_product", purchased_at=T0 - timedelta(days=100), remedy_preference="refund"),
        None,
        LATE,
    ),
    "defective, refund, charge not yet come": (
        dict(category="defective_product", purchased_at=T0 - timedelta(days=100), remedy_preference="refund"),
        None,
        None,
    ),
    "defective, replacement": (dict(category="defective_product", purchased_at=T0 - timedelta(days=100)), None, None),
    "defective, outside guarantee": (
        dict(category="defective_product", purchased_at=T0 - timedelta(days=4 * 365)),
        None,
        None,
    ),
    "cancellation after ten days": (
        dict(category="cancellation"),
        dict(amount="30.00", kind="subscription", posted_at=T0 - timedelta(days=10)),
        None,
    ),
    "cancellation the day it was charged": (
        dict(category="cancellation"),
        dict(amount="30.00", kind="subscription", posted_at=T0),
        None,
    ),
}

REPLACED_BEFORE_REFUND = (
    "The product is replaced: by law a repair or a replacement comes before a refund,"
    " and a person can still arrange a refund if neither works."
)

# A refund preferred but not possible at once: replaced, by law, and said so.
REPLACED_NOT_REFUNDED: list[tuple[object, ...]] = [
    (
        "decided",
        "defective-product",
        [("replacement", "ch-1", None, None, None)],
        [
            ("legal_guarantee", "The product is within the 3-year legal guarantee."),
            ("replacement_before_refund", REPLACED_BEFORE_REFUND),
        ],
    )
]

# Written once from the rules as they are: a difference is a change to what customers read.
EXPECTED: dict[str, list[tuple[object, ...]]] = {
    "digital delivery failed": [
        (
            "decided",
            "failed-delivery",
            [("refund", "ch-1", "4.99", "USD", "3-5 business days")],
            [("failed_delivery", "The digital product did not work; the whole USD 4.99 is refunded.")],
        )
    ],
    "physical delivery failed": [
        ("escalated", "normal", "not_digital", "A failed delivery of goods or a service needs a person.")
    ],
    "delivery failed, charge never came": [
        ("escalated", "normal", "charge_not_found", "The charge complained about is not known.")
    ],
    "micro fee disputed": [
        (
            "decided",
            "micro-claim",
            [("charge_waiver", "ch-1", "2.50", "USD", None)],
            [("micro_claim", "The charge of USD 2.50 is taken off the bill; thank you for telling us.")],
        )
    ],
    "disputed charge never came": [("escalated", "normal", "charge_not_found", "The disputed charge is not known.")],
    "damaged item": [
        (
            "decided",
            "damaged-item",
            [("refund", "ch-1", "50.00", "USD", "3-5 business days"), ("voucher", None, "10.00", "USD", None)],
            [
                ("damaged_item", "The damage claim of USD 50.00 is refunded."),
                ("goodwill_voucher", "A goodwill voucher of USD 10.00 for the trouble."),
            ],
        )
    ],
    "defective, no purchase date": [
        ("escalated", "normal", "purchase_date_unknown", "No purchase date to check the guarantee against.")
    ],
    "defective, repair": [
        (
            "decided",
            "defective-product",
            [("repair", "ch-1", None, None, None)],
            [
                ("legal_guarantee", "The product is within the 3-year legal guarantee."),
                ("defective_product", "The product is repaired."),
            ],
        )
    ],
    "defective, refund": [
        (
            "decided",
            "defective-product",
            [("refund", "ch-1", "40.00", "USD", "3-5 business days")],
            [
                ("legal_guarantee", "The product is within the 3-year legal guarantee."),
                ("defective_product", "The USD 40.00 is refunded, as preferred."),
            ],
        )
    ],
    "defective, refund over the limit": REPLACED_NOT_REFUNDED,
    "defective, refund without charge": REPLACED_NOT_REFUNDED,
    "defective, refund, charge not yet come": [("awaiting", "ch-1")],
    "defective, replacement": [
        (
            "decided",
            "defective-product",
            [("replacement", "ch-1", None, None, None)],
            [
                ("legal_guarantee", "The product is within the 3-year legal guarantee."),
                ("defective_product", "The product is replaced."),
            ],
        )
    ],
    "defective, outside guarantee": [
        ("escalated", "normal", "outside_guarantee", "Filed after the 3-year legal guarantee ended.")
    ],
    "cancellation after ten days": [
        (
            "decided",
            "cancellation",
            [("cancellation", "ch-1", None, None, None), ("refund", "ch-1", "20.00", "USD", "3-5 business days")],
            [
                ("cancellation", "The cancellation is confirmed, effective now."),
                ("unused_period", "The unused part of the period, USD 20.00, is refunded."),
            ],
        )
    ],
    "cancellation the day it was charged": [
        (
            "decided",
            "cancellation",
            [("cancellation", "ch-1", None, None, None), ("refund", "ch-1", "30.00", "USD", "3-5 business days")],
            [
                ("cancellation", "The cancellation is confirmed, effective now."),
                ("unused_period", "The unused part of the period, USD 30.00, is refunded."),
            ],
        )
    ],
}


def summary(events: list[EventData]) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for e in events:
        if isinstance(e, DecisionMade):
            remedies = [(r.type, r.charge_id, None if r.amount is None else str(r.amount), r.currency, r.settlement)
                        for r in e.remedies]  # fmt: skip
            out.append(("decided", e.policy.rule, remedies, [(r.code, r.text) for r in e.reasons]))
        elif isinstance(e, CaseEscalated):
            out.append(("escalated", e.priority, e.reason.code, e.reason.text))
        elif isinstance(e, ChargeAwaited):
            out.append(("awaiting", e.charge_id))
    return out


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_a_rule_s_outcome_is_as_written(name: str) -> None:
    fields, charge_fields, now = SCENARIOS[name]
    fields = dict(fields)
    category = fields.pop("category")
    the_charge = None if charge_fields is None else charge(**charge_fields)
    events, _ = file(complaint(category, **fields), the_charge, now=now)
    assert summary(events) == EXPECTED[name]


def test_every_scenario_has_its_outcome_written() -> None:
    assert set(SCENARIOS) == set(EXPECTED)
