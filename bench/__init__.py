"""Benchmarks on real servers: ``make bench`` / ``python -m bench [NAMES...] [--quick]``.

Adding one: drop a module in ``bench/`` (no registration anywhere else) that defines

    NAME = "recovery"                       # what `python -m bench recovery` selects
    DESCRIPTION = "complaints -> decisions"  # one line for `--list`
    ORDER = 30                               # optional; lower runs first (default 100)

    async def run(ctx: Context) -> list[Row]:
        n = ctx.scale(100_000, quick=10_000)
        with ctx.progress("decisions", total=n) as bar:
            ...                                 # bar.advance(k)
        return [Row("decisions", rate, "events/s", note="...")]

``ctx`` gives the settings (broker and a fresh migrated database), an open pool,
``fresh_database()`` for another empty migrated database, ``topic()`` for a new topic, and
the progress bars. Modules whose name starts with ``_`` are helpers, not benchmarks.
"""

from __future__ import annotations

from bench.registry import Benchmark, Context, Row, discover

__all__ = ["Benchmark", "Context", "Row", "discover"]
