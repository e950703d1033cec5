"""The retry schedule: at least as patient as Knock (8 retries over 30 minutes), every time."""

from __future__ import annotations

import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.notifier.domain.retry import backoff_delays, is_permanent_reply, retry_span
from services.notifier.settings import NotifierSettings

KNOCK_SPAN_S = 30 * 60


def _default(field: str) -> float:
    value = NotifierSettings.model_fields[field].default
    assert isinstance(value, int | float)
    return value


DEFAULTS = (
    int(_default("delivery_max_attempts")),
    _default("delivery_base_delay_s"),
    _default("delivery_max_delay_s"),
)


def test_defaults_are_the_documented_ones() -> None:
    assert DEFAULTS == (10, 5.0, 900.0)


def test_default_schedule_is_never_less_patient_than_knock() -> None:
    span = retry_span(*DEFAULTS)
    assert span.floor_s > KNOCK_SPAN_S, "even the shortest draw spans over 30 minutes"
    assert span.expected_s > KNOCK_SPAN_S
    assert span.ceiling_s > KNOCK_SPAN_S
    assert span.floor_s == 2175
    assert span.ceiling_s == 3070


def test_drawn_schedules_average_the_expected_span() -> None:
    spans = [sum(backoff_delays(*DEFAULTS, random.Random(seed))) for seed in range(2000)]
    assert min(spans) >= retry_span(*DEFAULTS).floor_s
    assert statistics.fmean(spans) == pytest.approx(retry_span(*DEFAULTS).expected_s, rel=0.02)


def test_same_seed_same_schedule() -> None:
    assert backoff_delays(*DEFAULTS, random.Random(7)) == backoff_delays(*DEFAULTS, random.Random(7))


def test_one_attempt_means_no_waits() -> None:
    assert backoff_delays(1, 5, 900, random.Random(0)) == []


@pytest.mark.parametrize(("attempts", "base", "cap"), [(0, 5, 900), (3, 0, 900), (3, 10, 5)])
def test_nonsense_settings_are_refused(attempts: int, base: float, cap: float) -> None:
    with pytest.raises(ValueError, match=r"must be|need"):
        backoff_delays(attempts, base, cap, random.Random(0))


# No example database: it would leave a .hypothesis folder in the working tree.
@settings(database=None)
@given(
    attempts=st.integers(min_value=1, max_value=60),
    base=st.floats(min_value=0.01, max_value=60),
    cap_factor=st.floats(min_value=1, max_value=1000),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_every_wait_is_half_fixed_half_random_and_capped(
    attempts: int, base: float, cap_factor: float, seed: int
) -> None:
    cap = base * cap_factor
    waits = backoff_delays(attempts, base, cap, random.Random(seed))
    assert len(waits) == attempts - 1
    floor = base
    for wait in waits:
        assert min(cap, floor) <= wait <= min(cap, 2 * floor)
        floor = min(cap, floor * 2)
    span = retry_span(attempts, base, cap)
    assert span.floor_s <= sum(waits) + 1e-6
    assert sum(waits) <= span.ceiling_s + 1e-6
    assert span.floor_s <= span.expected_s <= span.ceiling_s + 1e-6


@pytest.mark.parametrize(("code", "permanent"), [(550, True), (554, True), (500, True)])
def test_5xx_is_permanent(code: int, permanent: bool) -> None:
    assert is_permanent_reply(code) is permanent


@pytest.mark.parametrize("code", [421, 450, 451, 452, 250, 600])
def test_everything_else_is_worth_a_retry(code: int) -> None:
    assert not is_permanent_reply(code)
