"""``python -m bench [NAMES...] [--quick] [--list]``: see bench/__init__.py; with ``--against REF``,
the same benchmarks here and in REF, interleaved: see bench/compare.py."""

from __future__ import annotations

import argparse
import asyncio
import sys

from rich.console import Console
from rich.table import Table

from bench.compare import DEFAULT_ROUNDS, compare, parse_assignment
from bench.registry import discover
from bench.runner import print_table, run_benchmarks, write_results


def main(argv: list[str] | None = None) -> int:
    benchmarks = discover()
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Throughput on real servers: the bundled broker and PostgreSQL unless "
        "KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL name others.",
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"of {', '.join(benchmarks)}")
    parser.add_argument("--quick", action="store_true", help="smaller runs, for a smoke test")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    against = parser.add_argument_group("comparing with another commit (bench/compare.py)")
    against.add_argument("--against", metavar="REF",
                         help="run the benchmarks alternately in a worktree of git REF and in this tree, and "
                         "compare; `.` is this tree again (with --env / --against-env)")  # fmt: skip
    against.add_argument("--rounds", type=_positive, metavar="N", help=f"pairs of runs (default {DEFAULT_ROUNDS})")
    against.add_argument("--env", action="append", type=parse_assignment, default=[], metavar="K=V",
                         help="set in this tree's runs; repeatable")  # fmt: skip
    against.add_argument("--against-env", action="append", type=parse_assignment, default=[], metavar="K=V",
                         help="set in REF's runs; repeatable")  # fmt: skip
    args = parser.parse_args(argv)
    if args.against is None and (args.rounds is not None or args.env or args.against_env):
        parser.error("--rounds, --env and --against-env go with --against REF")
    # Piped (CI logs, `| tee`): wide enough for the table rather than the 80-column default.
    console = Console(width=None if sys.stdout.isatty() else 132)
    if args.list:
        table = Table("name", "description", "module")
        for b in benchmarks.values():
            table.add_row(b.name, b.description, b.module)
        console.print(table)
        return 0
    unknown = [n for n in args.names if n not in benchmarks]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; have {', '.join(benchmarks)}")
    if args.against is not None:
        return compare(args.against, args.names, rounds=args.rounds or DEFAULT_ROUNDS, quick=args.quick,
                       env=dict(args.env), against_env=dict(args.against_env), console=console)  # fmt: skip
    selected = [benchmarks[n] for n in args.names] if args.names else list(benchmarks.values())
    measured, failures, meta = asyncio.run(run_benchmarks(selected, quick=args.quick, console=console))
    print_table(measured, meta, console)
    path = write_results(measured, failures, meta)
    console.print(f"results: {path}")
    for failure in failures:
        console.print("failed:", style="red", end=" ")
        console.print(failure, markup=False, highlight=False)
    return 1 if failures else 0


def _positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


if __name__ == "__main__":
    sys.exit(main())
