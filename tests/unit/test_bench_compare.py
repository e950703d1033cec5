"""``python -m bench --against``: the order of the runs, how they pair up, and what the summary
says about them (bench/compare.py). The subprocesses themselves: tests/e2e/test_bench_compare.py."""

from __future__ import annotations

import argparse
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.__main__ import main
from bench.compare import Run, Side, direction, keyed, pair_rounds, parse_assignment, schedule, shown, summarise

positive = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False)


def row(value: float, metric: str = "drain", unit: str = "messages/s", benchmark: str = "relay") -> dict[str, Any]:
    return {"benchmark": benchmark, "metric": metric, "value": value, "unit": unit}


def run(round_: int, side: Side, *values: float) -> Run:
    return Run(round_, side, 0.5, results=[row(v) for v in values])


# --------------------------------------------------------------------------- K=V


@given(st.text(min_size=1).filter(lambda k: "=" not in k and k.strip() == k and k != ""), st.text())
def test_an_assignment_splits_at_the_first_equals_sign(name: str, value: str) -> None:
    assert parse_assignment(f"{name}={value}") == (name, value)


@pytest.mark.parametrize("text", ["NAME", "=value", " =value", ""])
def test_an_assignment_needs_a_name_and_an_equals_sign(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="NAME=VALUE"):
        parse_assignment(text)


def test_the_command_line_refuses_comparison_options_without_against(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--rounds", "2", "relay"], ["--env", "A=1", "relay"], ["--against-env", "A=1"]):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2
        assert "go with --against" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--against", "HEAD", "--rounds", "0", "relay"])
    assert "at least 1" in capsys.readouterr().err


# --------------------------------------------------------------------------- order and pairs


@given(st.integers(min_value=1, max_value=50))
def test_each_round_runs_both_sides_once_and_the_first_side_alternates(rounds: int) -> None:
    order = schedule(rounds)
    assert len(order) == 2 * rounds
    for r in range(1, rounds + 1):
        assert sorted(side for n, side in order if n == r) == ["ref", "this"]
    firsts = [order[i][1] for i in range(0, len(order), 2)]
    assert firsts == [("ref", "this")[i % 2] for i in range(rounds)]
    assert [n for n, _ in order] == sorted(n for n, _ in order)


def test_runs_pair_up_by_round_whatever_order_they_ran_in() -> None:
    runs = [run(1, "ref", 1), run(1, "this", 2), run(2, "this", 3), run(2, "ref", 4), run(3, "ref", 5)]
    rounds = pair_rounds(runs)
    assert {r: {s: x.results[0]["value"] for s, x in sides.items()} for r, sides in rounds.items()} == {
        1: {"ref": 1, "this": 2},
        2: {"this": 3, "ref": 4},
        3: {"ref": 5},
    }


def test_a_metric_reported_twice_by_one_benchmark_keeps_both_figures() -> None:
    assert keyed([row(1, "append"), row(2, "append"), row(3, "read")]) == {
        ("relay", "append", "messages/s", 0): 1.0,
        ("relay", "append", "messages/s", 1): 2.0,
        ("relay", "read", "messages/s", 0): 3.0,
    }


# --------------------------------------------------------------------------- direction


@pytest.mark.parametrize(
    ("unit", "better"),
    [("events/s", "higher"), ("messages/s", "higher"), ("decisions/s", "higher"), ("notifications/s", "higher"),
     ("ms", "lower"), ("s", "lower"), ("µs/message", "lower"), ("%", None), ("", None)],
)  # fmt: skip
def test_rates_are_better_higher_and_times_lower(unit: str, better: str | None) -> None:
    assert direction(unit) == better


# --------------------------------------------------------------------------- the summary


@given(st.lists(st.tuples(positive, positive), min_size=1, max_size=9))
def test_the_pair_ratios_are_this_over_ref_round_by_round(pairs: list[tuple[float, float]]) -> None:
    runs = [r for i, (ref, this) in enumerate(pairs, 1) for r in (run(i, "ref", ref), run(i, "this", this))]
    (s,) = summarise(runs)
    assert s.pair_ratios == pytest.approx([this / ref for ref, this in pairs])
    assert s.pair_ratio is not None
    assert s.ref is not None
    assert s.this is not None
    assert s.pair_ratio.min <= s.pair_ratio.median <= s.pair_ratio.max
    assert s.ref.min <= s.ref.median <= s.ref.max
    assert (s.ref.n, s.this.n, s.pair_ratio.n) == (len(pairs),) * 3
    assert s.ratio_of_medians == pytest.approx(s.this.median / s.ref.median)


@given(st.lists(positive, min_size=1, max_size=9), st.floats(min_value=0.01, max_value=100))
def test_this_side_k_times_ref_gives_ratios_of_k(refs: list[float], k: float) -> None:
    runs = [r for i, v in enumerate(refs, 1) for r in (run(i, "this", v * k), run(i, "ref", v))]
    (s,) = summarise(runs)
    assert s.ratio_of_medians == pytest.approx(k)
    assert s.pair_ratio is not None
    assert (s.pair_ratio.min, s.pair_ratio.median, s.pair_ratio.max) == pytest.approx((k, k, k))


def test_a_round_with_one_side_missing_counts_for_its_side_but_makes_no_pair() -> None:
    runs = [run(1, "ref", 10), run(1, "this", 20), run(2, "this", 40)]
    (s,) = summarise(runs)
    assert s.this is not None
    assert s.this.n == 2
    assert s.pair_ratios == [2.0]


def test_a_metric_only_one_side_has_is_listed_without_a_ratio() -> None:
    runs = [
        Run(1, "ref", 0.1, results=[row(10)]),
        Run(1, "this", 0.1, results=[row(20), row(5, "new", "ms")]),
    ]
    old, new = summarise(runs)
    assert (old.metric, old.pair_ratios) == ("drain", [2.0])
    assert (new.metric, new.ref, new.ratio_of_medians, new.pair_ratios, new.better) == ("new", None, None, [], "lower")


def test_a_zero_on_the_ref_side_gives_no_ratio() -> None:
    (s,) = summarise([run(1, "ref", 0), run(1, "this", 3)])
    assert (s.ratio_of_medians, s.pair_ratios, s.pair_ratio) == (None, [], None)


def test_a_title_shows_settings_but_not_what_may_be_secret() -> None:
    env = {
        "OTEL_TRACES_EXPORTER": "console",
        "RECOVERY_VOUCHER_SECRET": "s3cr3t",
        "DATABASE_URL": "postgresql://u:pw@h/d",
    }
    assert shown(env) == "OTEL_TRACES_EXPORTER=console RECOVERY_VOUCHER_SECRET=*** DATABASE_URL=***"


def test_a_figure_in_a_metric_name_does_not_split_the_metric() -> None:
    ceiling = "ceiling if CPU alone limited it: 2 CPUs / {} ms"
    runs = [
        Run(1, "ref", 0.1, results=[row(4545, ceiling.format("0.44"), "decisions/s"), row(9, "p50 at 5.00/s", "ms")]),
        Run(1, "this", 0.1, results=[row(3488, ceiling.format("0.57"), "decisions/s"), row(9, "p50 at 5.00/s", "ms")]),
    ]
    cpu, latency = summarise(runs)
    assert cpu.metric == ceiling.format("…")
    assert cpu.pair_ratios == [pytest.approx(3488 / 4545)]
    assert latency.metric == "p50 at 5.00/s"


def test_names_apart_from_their_decimals_stay_apart() -> None:
    sides: tuple[Side, Side] = ("ref", "this")
    runs = [Run(1, side, 0.1, results=[row(1, "latency, p50", "ms"), row(2, "latency, p99", "ms")]) for side in sides]
    assert [s.metric for s in summarise(runs)] == ["latency, p50", "latency, p99"]
