"""A new charge's usual amounts: from every charge before it, the batch's own included."""

from __future__ import annotations

import math
from collections import Counter
from datetime import timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.contract.events import ChargePosted
from services.recovery.domain.usual import Usual, Window

from .builders import T0


def percentile_disc(amounts: list[Decimal]) -> Decimal | None:
    return sorted(amounts)[(len(amounts) + 1) // 2 - 1] if amounts else None


def window(recorded: list[Decimal], spread: int) -> Window:
    """The window the read model returns for ``recorded`` (the query's rule, in Python)."""
    rows, upto = [], 0
    for amount, charges in sorted(Counter(recorded).items()):
        upto += charges
        rows.append((amount, charges, upto))
    total = len(recorded)
    lo, hi = math.ceil((total - spread) / 2), math.ceil((total + spread) / 2)
    return Window(total, [r for r in rows if r[2] >= lo and r[2] - r[1] < hi])


amounts = st.integers(1, 40).map(lambda n: Decimal(n).scaleb(-1))


@settings(max_examples=300, deadline=None)
@given(recorded=st.lists(amounts, max_size=60), batch=st.lists(amounts, max_size=12))
def test_each_charge_of_a_batch_gets_the_median_of_all_charges_before_it(
    recorded: list[Decimal], batch: list[Decimal]
) -> None:
    w = window(recorded, len(batch))
    for i, amount in enumerate(batch):
        assert w.median() == percentile_disc(recorded + batch[:i])
        w.add(amount)


def posted(n: int, amount: str, kind: str = "shipping", customer: str = "c-1") -> ChargePosted:
    return ChargePosted(charge_id=f"ch-{n}", customer_id=customer, amount=amount, currency="USD", kind=kind,
                        posted_at=T0 - timedelta(days=n))  # fmt: skip


def test_a_customer_s_own_usual_amount_counts_the_charges_ahead_in_the_batch_and_not_the_charge() -> None:
    usual = Usual(own={("c-1", "shipping", "USD"): [Decimal("10.00")]}, across={("shipping", "USD"): Window()})
    assert usual.assess(posted(1, "12.00")) == (Decimal("10.00"), None)
    assert usual.assess(posted(2, "7455.00")) == (Decimal("11.00"), Decimal("12.00"))
    assert usual.assess(posted(3, "1.00", customer="c-2")) == (None, Decimal("12.00"))


def test_purchases_are_never_compared_across_customers() -> None:
    usual = Usual()
    assert usual.assess(posted(1, "999.00", kind="purchase")) == (None, None)
    assert usual.across == {}
