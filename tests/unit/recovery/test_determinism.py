"""Replays reproduce decisions: keyed voucher codes, byte-identical events, facts on record."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta
from decimal import Decimal

import pytest

from services.common.contract.events import ChargePosted, Product
from services.recovery.domain import ChargeFacts, VoucherKey, fold

from .builders import CODES, T0, complaint, file

CASE = "3f1c9a52-6d0e-5b7a-9c41-2e8d7f0a6b13"


def test_voucher_codes_are_derived_from_the_case_a_sequence_and_the_secret() -> None:
    assert CODES("case-1", 0) == CODES("case-1", 0)
    assert CODES("case-1", 0) != CODES("case-1", 1)
    assert CODES("case-1", 0) != CODES("case-2", 0)
    assert CODES("case-1", 0).startswith("RV-")
    assert len(CODES("case-1", 0)) == len("RV-XXXX-XXXX-XXXX")


def test_a_voucher_code_is_pinned_for_a_secret_a_case_and_a_sequence() -> None:
    # Changing how codes are derived breaks replays: a case decided again (a message
    # delivered again after its inbox entry was pruned) would issue other codes than those
    # recorded and sent to the customer. These literals must never change.
    key = VoucherKey(b"pinned-voucher-secret-for-the-tests-0001")
    assert (key(CASE, 0), key(CASE, 1)) == ("RV-VTVW-GNKT-L7BU", "RV-A2AL-SYXL-ZSVY")


def test_a_voucher_code_cannot_be_worked_out_without_the_secret() -> None:
    other = VoucherKey(b"another-secret-of-thirty-two-bytes-at-least")
    assert other(CASE, 0) != CODES(CASE, 0)
    # Neither is it the plain hash of what the customer sees (the case id and a sequence).
    digest = hashlib.sha256(f"{CASE}\x1fvoucher\x1f0".encode()).digest()
    unkeyed = base64.b32encode(digest).decode()[:12]
    assert CODES(CASE, 0).replace("-", "")[2:] != unkeyed


def test_a_short_voucher_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        VoucherKey(b"too-short")


def test_the_secret_never_shows_in_the_key_s_repr() -> None:
    assert "unit-tests" not in repr(CODES)


def test_the_same_complaint_gives_byte_identical_events() -> None:
    claim = complaint("damaged_item", claimed_amount="80.00", currency="EUR", charge_id=None)
    first, _ = file(claim)
    second, _ = file(claim)
    assert [e.model_dump_json() for e in first] == [e.model_dump_json() for e in second]


def test_a_replay_of_the_stream_rebuilds_the_case_with_its_voucher_count() -> None:
    events, case = file(complaint("damaged_item", claimed_amount="80.00", currency="EUR", charge_id=None))
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
