"""``python -m bench --against REF [--rounds N] [--env K=V] [--against-env K=V] [--quick] NAMES...``

The same benchmarks in this tree and in REF (a git ref, checked out as a detached worktree in a
temp directory; ``.`` is this tree again), each run a ``python -m bench NAMES [--quick]``
subprocess, alternately: REF then this in round 1, this then REF in round 2, and so on, so a
change in the machine's load hits both sides alike. Each pair of runs gives a ratio per metric;
their median is the figure to quote on a shared machine, where one run of each side says little.

Only the interface every version of the bench has is used: ``python -m bench NAMES [--quick]``
writes ``bench/results/latest.json`` (``results``: benchmark, metric, value, unit) in the tree
it runs in. The summary goes to ``bench/results/compare-latest.json`` in this tree.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, Literal

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench.runner import RESULTS, _fmt

Side = Literal["ref", "this"]
Better = Literal["higher", "lower"]
# One figure of a run: benchmark, metric, unit, and which of the metrics of that name it is
# (a benchmark may report the same metric twice, e.g. one writer and eight).
Key = tuple[str, str, str, int]

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ROUNDS = 3
TAIL_LINES = 25
# Time per something: less is better. Rates (anything per second): more is better.
TIME_UNITS = frozenset({"ns", "µs", "us", "ms", "s", "min", "h"})
DECIMAL = re.compile(r"\d+\.\d+")
SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|KEY|URL|DSN|HEADERS", re.IGNORECASE)


# --------------------------------------------------------------------------- pure parts


def parse_assignment(text: str) -> tuple[str, str]:
    """``K=V`` -> ``(K, V)``; the value may be empty or hold ``=``, the name may not be empty."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), value


def shown(env: dict[str, str]) -> str:
    """``K=V ...`` for a title; the value hidden where the name suggests a secret (or a URL,
    which may hold a password)."""
    return " ".join(f"{k}={'***' if SECRET_NAME.search(k) else v}" for k, v in env.items())


def schedule(rounds: int) -> list[tuple[int, Side]]:
    """The runs in order: REF first in odd rounds, this tree first in even ones (rounds from 1)."""
    order: list[tuple[int, Side]] = []
    for r in range(1, rounds + 1):
        sides: tuple[Side, Side] = ("ref", "this") if r % 2 else ("this", "ref")
        order.extend((r, side) for side in sides)
    return order


def direction(unit: str) -> Better | None:
    """Which way is good for a unit: rates up, times (also per item, ``µs/message``) down."""
    unit = unit.strip()
    if unit.endswith("/s"):
        return "higher"
    if unit.split("/")[0] in TIME_UNITS:
        return "lower"
    return None


def keyed(results: Iterable[dict[str, Any]]) -> dict[Key, float]:
    """A run's results by key: the metric's name with its decimals left out (a name may hold a
    figure of its run, ``2 CPUs / 0.44 ms``), and the next occurrence number for a repeat."""
    out: dict[Key, float] = {}
    seen: dict[tuple[str, str, str], int] = {}
    for r in results:
        base = (str(r["benchmark"]), DECIMAL.sub("…", str(r["metric"])), str(r["unit"]))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out[(*base, n)] = float(r["value"])
    return out


def common_name(names: Sequence[str]) -> str:
    """The name runs gave one metric: the decimals they agree on, ``…`` for those they do not."""
    figures = [DECIMAL.findall(n) for n in names]
    parts = DECIMAL.split(names[0])
    kept = [f[0] if len(set(f)) == 1 else "…" for f in zip(*figures, strict=True)]
    return "".join(p + (kept[i] if i < len(kept) else "") for i, p in enumerate(parts))


@dataclass(frozen=True)
class Spread:
    median: float
    min: float
    max: float
    n: int


def spread(values: Sequence[float]) -> Spread | None:
    if not values:
        return None
    return Spread(statistics.median(values), min(values), max(values), len(values))


def ratio(this: float, ref: float) -> float | None:
    """this / REF; none when REF is zero."""
    return this / ref if ref else None


@dataclass
class Run:
    """One ``python -m bench`` subprocess: when, under what load, and what it measured."""

    round: int
    side: Side
    loadavg_1m: float
    started_at: str = ""
    elapsed_s: float = 0.0
    returncode: int = 0
    results: list[dict[str, Any]] = field(default_factory=list)
    output_tail: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def pair_rounds(runs: Iterable[Run]) -> dict[int, dict[Side, Run]]:
    """The runs by round and side; a round missing a side (failed, interrupted) has just one."""
    rounds: dict[int, dict[Side, Run]] = {}
    for run in runs:
        rounds.setdefault(run.round, {})[run.side] = run
    return rounds


@dataclass(frozen=True)
class Summary:
    benchmark: str
    metric: str
    unit: str
    better: Better | None
    ref: Spread | None
    this: Spread | None
    ratio_of_medians: float | None
    pair_ratios: list[float]
    pair_ratio: Spread | None


def summarise(runs: Sequence[Run]) -> list[Summary]:
    """Per metric, in the order the runs report them: each side's spread, the ratio of the
    medians, and the ratios (this / REF) of the runs of each round that both measured it."""
    values: dict[Key, dict[Side, list[float]]] = {}
    names: dict[Key, list[str]] = {}
    for run in runs:
        for (key, value), result in zip(keyed(run.results).items(), run.results, strict=True):
            values.setdefault(key, {"ref": [], "this": []})[run.side].append(value)
            names.setdefault(key, []).append(str(result["metric"]))
    pairs: dict[Key, list[float]] = {key: [] for key in values}
    for _, sides in sorted(pair_rounds(runs).items()):
        if "ref" not in sides or "this" not in sides:
            continue
        ref, this = keyed(sides["ref"].results), keyed(sides["this"].results)
        for key in ref.keys() & this.keys():
            r = ratio(this[key], ref[key])
            if r is not None:
                pairs[key].append(r)
    out = []
    for key, by_side in values.items():
        ref_spread, this_spread = spread(by_side["ref"]), spread(by_side["this"])
        medians = ratio(this_spread.median, ref_spread.median) if ref_spread and this_spread else None
        benchmark, _, unit, _ = key
        out.append(Summary(benchmark, common_name(names[key]), unit, direction(unit), ref_spread, this_spread, medians,
                           pairs[key], spread(pairs[key])))  # fmt: skip
    return out


# --------------------------------------------------------------------------- trees and runs


@dataclass(frozen=True)
class Tree:
    side: Side
    label: str
    path: Path
    env: dict[str, str]


def _git(*args: str, cwd: Path = ROOT) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=120)
    return done.stdout.strip()


def describe(path: Path) -> str | None:
    """The short commit of a tree, ``+changes`` when it differs from it."""
    try:
        commit = _git("rev-parse", "--short", "HEAD", cwd=path)
        dirty = _git("status", "--porcelain", "--untracked-files=no", cwd=path)
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+changes" if dirty else "")


@contextmanager
def checkout(commit: str) -> Iterator[Path]:
    """A detached worktree of ``commit`` in a temp directory, removed on the way out."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-against-"))
    path = tmp / "tree"
    try:
        _git("worktree", "add", "--detach", "--quiet", str(path), commit)
        yield path
    finally:
        try:
            _git("worktree", "remove", "--force", str(path))
        except (OSError, subprocess.SubprocessError):
            shutil.rmtree(path, ignore_errors=True)
            subprocess.run(["git", "worktree", "prune"], cwd=ROOT, capture_output=True, check=False, timeout=120)
        shutil.rmtree(tmp, ignore_errors=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Ask a benchmark run to stop as Ctrl-C would (it then stops its servers), then insist."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_once(tree: Tree, round_: int, names: Sequence[str], *, quick: bool, log: Path) -> Run:
    """``python -m bench NAMES`` in ``tree``; its results if it wrote ``latest.json`` anew."""
    latest = tree.path / "bench" / "results" / "latest.json"
    before = latest.stat().st_mtime_ns if latest.exists() else None
    run = Run(round_, tree.side, round(os.getloadavg()[0], 2), datetime.now(UTC).isoformat(timespec="seconds"))
    env = {**os.environ, **tree.env, "PYTHONPATH": str(tree.path)}
    cmd = [sys.executable, "-m", "bench", *names, *(["--quick"] if quick else [])]
    started = time.perf_counter()
    with log.open("wb") as out:
        # Its own session: a Ctrl-C here reaches it once, through _stop, rather than twice.
        proc = subprocess.Popen(cmd, cwd=tree.path, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        try:
            run.returncode = proc.wait()
        finally:
            _stop(proc)
    run.elapsed_s = round(time.perf_counter() - started, 2)
    if latest.exists() and latest.stat().st_mtime_ns != before:
        try:
            doc = json.loads(latest.read_text())
            run.results = [{k: r[k] for k in ("benchmark", "metric", "value", "unit")} for r in doc["results"]]
        except (ValueError, KeyError, TypeError) as exc:
            run.returncode = run.returncode or 1
            run.output_tail = f"unreadable {latest}: {exc}\n"
    if not run.ok:
        lines = log.read_text(errors="replace").splitlines()
        run.output_tail += "\n".join(lines[-TAIL_LINES:])
    return run


# --------------------------------------------------------------------------- output


def _range(median: str, low: str, high: str) -> str:
    # The range on a line of its own keeps the columns narrow enough for the metric's name.
    return median if low == high else f"{median}\n[dim]{low}-{high}[/]"


def _spread_cell(s: Spread | None, unit: str) -> str:
    return "-" if s is None else _range(_fmt(s.median, unit), _fmt(s.min, unit), _fmt(s.max, unit))


def _ratio_cell(s: Spread | None, better: Better | None) -> str:
    if s is None:
        return "-"
    text = _range(f"{s.median:.3f}", f"{s.min:.3f}", f"{s.max:.3f}")
    # Every pair on the same side of 1: colour it by whether that side is the good one.
    if better is None or s.min <= 1 <= s.max:
        return text
    up = s.min > 1
    return f"[{'green' if up == (better == 'higher') else 'red'}]{text}[/]"


ARROWS: dict[Better | None, str] = {"higher": "↑", "lower": "[yellow]↓[/]", None: "?"}


def print_summary(summary: Sequence[Summary], runs: Sequence[Run], meta: dict[str, Any], console: Console) -> None:
    ref = "REF" if meta["ref"] == "." else meta["ref"]
    this = f"this tree ({meta['this_label']})" + (f" with {shown(meta['env'])}" if meta["env"] else "")
    table = Table(title=f"{this} against {meta['ref_label']}"
                  + (" (--quick)" if meta["quick"] else ""))  # fmt: skip
    for column, justify in (("benchmark", "left"), ("metric", "left"), ("unit", "left"),
                            (ref, "right"), ("this", "right"), ("ratio of\nmedians", "right"),
                            (f"pair ratios\nthis/{ref}", "right"), ("pairs", "right")):  # fmt: skip
        table.add_column(column, justify=justify, no_wrap=justify == "right")  # type: ignore[arg-type]
    previous = None
    for s in summary:
        name = s.benchmark if s.benchmark != previous else ""
        previous = s.benchmark
        medians = "-" if s.ratio_of_medians is None else f"{s.ratio_of_medians:.3f}"
        table.add_row(name, s.metric, f"{s.unit} {ARROWS[s.better]}", _spread_cell(s.ref, s.unit),
                      _spread_cell(s.this, s.unit), medians, _ratio_cell(s.pair_ratio, s.better),
                      str(len(s.pair_ratios)))  # fmt: skip
    console.print(table)
    loads = meta["loadavg_1m_range"]
    load = f"{loads[0]:.2f}-{loads[1]:.2f}" if loads else "-"
    console.print(
        f"Cells: median, then min-max. ↑ higher is better, [yellow]↓[/] lower is better. Ratios are "
        f"this / {ref}; a pair is the two runs of one round. {len(runs)} runs over {meta['rounds']} rounds; "
        f"1-minute load average before each run {load}; {meta['cpu_count']} CPUs."
    )


def write_compare(doc: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "compare-latest.json"
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def compare(ref: str, names: Sequence[str], *, rounds: int, quick: bool, env: dict[str, str],
            against_env: dict[str, str], console: Console) -> int:  # fmt: skip
    """Runs the comparison and prints it: 0 if every run succeeded, 1 if any failed, 2 if REF
    cannot be checked out, 130 if interrupted (after the summary of the runs done)."""
    same = ref == "."
    this_label = describe(ROOT) or "?"
    commit = None
    if same:
        ref_label = f". ({this_label})"
        ref_label = f"{ref_label} with {shown(against_env)}" if against_env else ref_label
    else:
        try:
            commit = _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        except subprocess.CalledProcessError:
            console.print(f"[red]--against {ref}: not a commit in this repository[/red]")
            return 2
        ref_label = f"{ref} ({commit[:9]})" + (f" with {shown(against_env)}" if against_env else "")
    # A TERM (a CI timeout, `kill`) stops the runs and removes the worktree as Ctrl-C does.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    runs: list[Run] = []
    interrupted = False
    try:
        with tempfile.TemporaryDirectory(prefix="bench-logs-") as logs, (
            checkout(commit) if commit else _same_tree()
        ) as ref_path:  # fmt: skip
            trees = {"ref": Tree("ref", ref_label, ref_path, against_env), "this": Tree("this", "this tree", ROOT, env)}
            _run_all(trees, names, rounds=rounds, quick=quick, logs=Path(logs), runs=runs, console=console)
    except subprocess.CalledProcessError as exc:
        console.print(f"[red]{' '.join(map(str, exc.cmd))} failed:[/red]")
        console.print(exc.stderr, markup=False, highlight=False)
        return 2
    except KeyboardInterrupt:
        interrupted = True
        console.print("[yellow]interrupted; the summary holds the runs done[/yellow]")
    finally:
        signal.signal(signal.SIGTERM, previous)
    loads = [r.loadavg_1m for r in runs]
    meta = {
        "ref": ref,
        "ref_label": ref_label,
        "ref_commit": commit,
        "this_label": this_label,
        "names": list(names),
        "quick": quick,
        "rounds": rounds,
        "interrupted": interrupted,
        "env": env,
        "against_env": against_env,
        "cpu_count": os.cpu_count(),
        "loadavg_1m_range": [min(loads), max(loads)] if loads else None,
    }
    summary = summarise(runs)
    print_summary(summary, runs, meta, console)
    path = write_compare({**meta, "runs": [asdict(r) for r in runs], "summary": [asdict(s) for s in summary]})
    console.print(f"results: {path}")
    failed = [r for r in runs if not r.ok]
    if failed:
        console.print(f"[red]{len(failed)} of {len(runs)} runs failed[/red]")
    return 130 if interrupted else 1 if failed else 0


@contextmanager
def _same_tree() -> Iterator[Path]:
    yield ROOT


def _run_all(trees: dict[str, Tree], names: Sequence[str], *, rounds: int, quick: bool, logs: Path,
             runs: list[Run], console: Console) -> None:  # fmt: skip
    plan = schedule(rounds)
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console)  # fmt: skip
    with progress:
        overall = progress.add_task("runs", total=len(plan))
        current = progress.add_task("", total=None)
        for i, (round_, side) in enumerate(plan):
            tree = trees[side]
            what = f"round {round_}/{rounds}: {tree.label}"
            progress.reset(current, description=what, total=None)
            run = run_once(tree, round_, names, quick=quick, log=logs / f"{i:02d}-{side}.log")
            runs.append(run)
            progress.advance(overall)
            status = "ok" if run.ok else f"[red]failed (exit {run.returncode})[/red]"
            progress.console.print(f"{what}: {run.elapsed_s:.1f} s, load {run.loadavg_1m:.2f}, {status}")
            if not run.ok:
                progress.console.print(run.output_tail, markup=False, highlight=False)
        progress.update(current, visible=False)
