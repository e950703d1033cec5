"""Values that must never change, written down as literals.

Each of these is derived from its inputs alone and is recorded or shared: case ids and
event ids are in the event store, voucher codes and amounts in the text sent to customers,
lock keys in every running instance. A change to how any is derived breaks replays of
recorded history (a case decided again gets another id, code or reason text than the one on
record) and, for the lock keys, running instances of two versions (one locks a charge under
a key the other never takes). So the expected values here are literals computed once, never
by the code under test; a test failing here is a change to undo, not a literal to update.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from services.common.records import derived_event_id
from services.recovery.adapters.readmodels import charge_lock_keys
from services.recovery.domain import case_id_for
from services.recovery.domain.remedies import money_text

from .recovery.builders import CODES, charge, complaint, file

ROOT = Path(__file__).resolve().parents[2]


def test_a_case_id_is_pinned_for_a_charge_an_order_and_a_bare_complaint() -> None:
    assert case_id_for(complaint(customer_id="cust-1", charge_id="ch-1")) == "ec7b8ded-f378-5773-ab31-f242fb416a41"
    assert case_id_for(complaint(charge_id=None, order_id="o-1")) == "fde88876-f5ed-5294-a302-7efbf68e5c62"
    assert case_id_for(complaint("other", complaint_id="a", charge_id=None)) == "3a7c9f32-9c0d-5629-9f0c-b4a77c486a89"


def test_a_voucher_code_is_pinned_under_the_tests_secret() -> None:
    # The builders' secret: the unit tests' expected codes below and elsewhere are these.
    assert (CODES("case-1", 0), CODES("case-1", 1)) == ("RV-QTUY-O5FJ-QFMZ", "RV-JCZ4-7VKJ-6H33")
    assert CODES("ec7b8ded-f378-5773-ab31-f242fb416a41", 0) == "RV-L5MT-UL5B-K6HL"


def test_charge_lock_keys_are_pinned() -> None:
    # Two instances of different versions lock a charge only if they compute the same key.
    assert charge_lock_keys(["ch-3", "ch-1", "ch-2"]) == [-1494346234, -773249392, 1072121788]


def test_a_derived_event_id_is_pinned() -> None:
    assert derived_event_id("cause-1", "case-1", 0) == "89ac4bcb-7c15-5b75-8b08-9c50ef882317"
    assert derived_event_id("cause-1", "case-1", 1) == "2d1265f2-6314-5636-ae74-87764a3a6f55"
    assert derived_event_id("t/2/41", "c.poison", 0) == "13bfffd5-10a4-5025-9a78-adbdc23b83cd"


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        ("4.9", "USD", "USD 4.90"),
        ("80", "EUR", "EUR 80.00"),
        ("7455", "COP", "COP 7455.00"),
        ("3000.4", "JPY", "JPY 3000"),
    ],
)
def test_the_amount_in_a_reason_is_pinned(amount: str, currency: str, text: str) -> None:
    assert money_text(Decimal(amount), currency) == text


def decisions() -> str:
    """The events ``decide()`` makes for a few complaints, as JSON text: what a replay in
    another process (another hash seed, another machine) must reproduce byte for byte."""
    runs = [
        file(complaint()),
        file(complaint(), charge("4.99")),
        file(
            complaint("damaged_item", claimed_amount="120.00", currency="USD"),
            charge("300.00", product_type="physical"),
        ),
        file(complaint("charge_disputed", charge_id="ch-2"), charge("900.00", charge_id="ch-2")),
        file(complaint("other", charge_id=None, order_id="o-1")),
    ]
    return json.dumps([[type(e).__name__, e.model_dump(mode="json")] for events, _ in runs for e in events])


@pytest.mark.parametrize("seed", ["0", "4242"])
def test_decide_gives_the_same_events_in_another_process_with_another_hash_seed(seed: str) -> None:
    env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
    other = subprocess.run(
        [sys.executable, "-c", "from tests.unit.test_pinned_values import decisions; print(decisions())"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    here = decisions()
    assert len(json.loads(here)) >= 10
    assert other.stdout.strip() == here
