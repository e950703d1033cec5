"""``python -m bench --against HEAD``: a worktree of HEAD and this tree, each running the real
benchmark as a subprocess on the real servers, one round; the table and
bench/results/compare-latest.json hold both sides' figures and their ratio, and the worktree
is gone afterwards. The arithmetic: tests/unit/test_bench_compare.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT
from tests.infra import Infra

FASTEST = "relay"  # a few seconds with --quick


def test_one_round_against_head_measures_both_sides_and_their_ratio(infra: Infra) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap,
           "DATABASE_URL": infra.database_url}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--against", "HEAD", "--rounds", "1", "--quick", FASTEST],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "against HEAD (" in out
    assert "round 1/1: HEAD" in out
    assert "round 1/1: this tree" in out
    assert "relay drain" in out

    doc = json.loads((ROOT / "bench" / "results" / "compare-latest.json").read_text())
    assert (doc["ref"], doc["rounds"], doc["quick"], doc["names"]) == ("HEAD", 1, True, [FASTEST])
    assert [(r["round"], r["side"], r["returncode"]) for r in doc["runs"]] == [(1, "ref", 0), (1, "this", 0)]
    ref, this = ({(x["metric"], x["unit"]): x["value"] for x in r["results"]} for r in doc["runs"])
    drain = next(s for s in doc["summary"] if s["metric"] == "relay drain")
    key = ("relay drain", "messages/s")
    assert drain["better"] == "higher"
    assert (drain["ref"]["median"], drain["this"]["median"]) == (ref[key], this[key])
    assert drain["pair_ratios"] == [pytest.approx(this[key] / ref[key])]
    assert drain["pair_ratio"]["n"] == 1
    assert f"{drain['pair_ratio']['median']:.3f}" in out
    low, high = doc["loadavg_1m_range"]
    assert 0 <= low <= high

    worktrees = subprocess.run(["git", "worktree", "list"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "bench-against-" not in worktrees.stdout
