"""The per-charge lock keys: PostgreSQL int4 values, one per charge, always in one order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.recovery.adapters.readmodels import charge_lock_keys


@given(st.lists(st.text(min_size=1), max_size=30))
def test_keys_are_int4_sorted_and_one_per_charge_whatever_the_order(charge_ids: list[str]) -> None:
    keys = charge_lock_keys(charge_ids)
    assert keys == sorted(keys)
    assert len(keys) == len(set(keys)) <= len(set(charge_ids))
    assert all(-(2**31) <= k < 2**31 for k in keys)
    assert charge_lock_keys(reversed(charge_ids)) == keys
    assert charge_lock_keys(charge_ids + charge_ids) == keys


def test_a_charge_always_gets_the_same_key() -> None:
    # Pinned: instances of two versions must lock a charge under one key (more pinned values
    # in tests/unit/test_pinned_values.py).
    assert charge_lock_keys(["ch-1"]) == [1072121788]
    assert charge_lock_keys(["ch-1"]) != charge_lock_keys(["ch-2"])
