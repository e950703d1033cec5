"""Replays reproduce decisions: derived voucher codes, byte-identical events, facts on record."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from services.common.contract.events import ChargePosted, Product
from services.recovery.domain import ChargeFacts, fold
from services.recovery.domain.remedies import voucher_code

from .builders import T0, complaint, file


def test_voucher_codes_are_derived_from_the_case_and_a_sequence() -> None:
    assert voucher_code("case-1", 0) == voucher_code("case-1", 0)
    assert voucher_code("case-1", 0) != voucher_code("case-1", 1)
    assert voucher_code("case-1", 0) != voucher_code("case-2", 0)
    assert voucher_code("case-1", 0).startswith("RV-")
    assert len(voucher_code("case-1", 0)) == len("RV-XXXX-XXXX-XXXX")


def test_the_same_complaint_gives_byte_identical_events() -> None:
    claim = complaint("damaged_item", claimed_amount="80.00", currency="EUR")
    first, _ = file(claim)
    second, _ = file(claim)
    assert [e.model_dump_json() for e in first] == [e.model_dump_json() for e in second]


def test_a_replay_of_the_stream_rebuilds_the_case_with_its_voucher_count() -> None:
    events, case = file(complaint("damaged_item", claimed_amount="80.00", currency="EUR"))
    rebuilt = fold(events)
    assert rebuilt == case
    assert rebuilt is not None
    assert rebuilt.vouchers_issued == 1


def test_charge_facts_come_from_a_posted_charge_with_the_medians() -> None:
    posted = ChargePosted(
        charge_id="ch-1",
        customer_id="cust-1",
        amount=Decimal("7455.00"),
        currency="USD",
        kind="shipping",
        product=Product(type="physical"),
        order_id="o-1",
        posted_at=T0 - timedelta(days=2),
    )
    facts = ChargeFacts.from_posted(posted, usual_all_amount=Decimal("12.50"))
    assert (facts.product_type, facts.order_id, facts.usual_all_amount) == (
        "physical",
        "o-1",
        Decimal("12.50"),
    )
    assert facts.usual_customer_amount is None
