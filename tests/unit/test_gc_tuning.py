"""The services' garbage-collector settings."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from services.common.gc_tuning import YOUNG_THRESHOLD, collect_if_due, paused_for_batch, tune_for_throughput


@pytest.fixture
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restore_gc")
def test_tuning_freezes_start_up_objects_and_raises_only_the_young_threshold() -> None:
    _, older, oldest = gc.get_threshold()
    tune_for_throughput()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (YOUNG_THRESHOLD, older, oldest)
    assert gc.isenabled()  # cycles are still collected


def test_no_collection_while_batches_are_in_hand_and_again_after_the_last() -> None:
    assert gc.isenabled()
    with paused_for_batch():
        assert not gc.isenabled()
        with paused_for_batch():  # a second batch (the timers) overlapping the first
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_failed_batch_turns_collection_back_on() -> None:
    with pytest.raises(RuntimeError), paused_for_batch():
        raise RuntimeError("the batch failed")
    assert gc.isenabled()


@pytest.mark.usefixtures("restore_gc")
def test_while_batches_overlap_the_collector_s_own_schedule_is_kept_between_them() -> None:
    gc.set_threshold(1000, 3, 10)
    kept: list[object] = []
    gc.collect()
    with paused_for_batch():
        collect_if_due()
        assert gc.get_count()[1] == 0, "nothing due: nothing collected"
        young = []
        for _ in range(8):
            kept.append([[i] for i in range(1500)])  # past the young threshold each time
            collect_if_due()
            young.append(gc.get_count()[:2])
        # Each round collects the young generation (its count back under the threshold),
        # and every fourth (more than 3 young collections since) the middle one.
        assert all(c[0] < 1000 for c in young)
        assert [c[1] for c in young] == [1, 2, 3, 0, 1, 2, 3, 0]
        assert not gc.isenabled()
