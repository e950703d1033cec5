"""Garbage-collector settings for the long-running services.

Handling a batch allocates many short-lived objects (models, dicts, tuples) that reference
counting frees at once; the cyclic collector's default thresholds (700 allocations) make it
scan the young generation thousands of times a second for cycles that are rarely there. Two
standard measures, as high-throughput Python services do:

- ``gc.freeze()`` once started: the modules, models and settings loaded at start-up move to a
  permanent generation that later collections never scan again;
- a higher threshold for the young generation, so it is scanned every 50,000 allocations;
- no collection while a batch is in hand (:func:`paused_for_batch`): everything a batch
  builds is alive until it ends, so a collection in the middle scans it all for nothing;
  what it leaves behind is collected after it. While a backlog lasts, batches overlap
  (services/common/pipeline.py) and one is always in hand: :func:`collect_if_due`, between
  two batches, collects what the collector itself would have by then.

Cycles are still collected (generations 1 and 2 keep their defaults). Measured on the
recovery path: about 15 % less CPU per complaint for the first two, 7 % more for the third.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_THRESHOLD = 50_000


def tune_for_throughput() -> None:
    """Freeze what start-up allocated and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)


_batches_in_hand = 0


@contextmanager
def paused_for_batch() -> Iterator[None]:
    """No cyclic collection while the batch is handled (re-entrant: tasks may overlap)."""
    global _batches_in_hand
    _batches_in_hand += 1
    gc.disable()
    try:
        yield
    finally:
        _batches_in_hand -= 1
        if _batches_in_hand == 0:
            gc.enable()


def collect_if_due() -> None:
    """While collection is paused, collect the generation the collector would have collected
    by now (its own rule: the young one past its threshold, and an older one once that many
    collections of the generation below it have run). Nothing while it is not paused."""
    if gc.isenabled():
        return
    thresholds, counts = gc.get_threshold(), gc.get_count()
    if counts[0] < thresholds[0]:
        return
    generation = 0
    while generation < 2 and counts[generation + 1] + 1 > thresholds[generation + 1]:
        generation += 1
    gc.collect(generation)
