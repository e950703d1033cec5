"""What-if throughput: past complaints re-decided per second under a candidate policy.

The history is recorded by the real ``RecoveryService`` in-process (bench/whatif_history.py:
every rule, people, breaches, four currencies), in batches of an hour of traffic on a
controlled clock; then ``what_if`` reads it back (read-only) and re-decides every complaint,
once under the shipped policy (which must change nothing) and once with a raised
micro-claim limit.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from decimal import Decimal

from bench.registry import Context, Row
from bench.services import VOUCHERS
from bench.whatif_history import START, advance, play, timeline
from services.common.clock import ManualClock
from services.common.gc_tuning import tune_for_throughput
from services.recovery.application import RecoveryService
from services.recovery.domain import Policy, load_policy, load_roster
from services.recovery.whatif import WhatIf, what_if

NAME = "whatif"
DESCRIPTION = "recoveryctl whatif: past complaints re-decided per second (read-only, simulated clock)"
ORDER = 50


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f} (5 min {five:.2f})"


async def _what_if(ctx: Context, policy: Policy, label: str, complaints: int, cases: int) -> tuple[WhatIf, float]:
    with (
        ctx.progress(f"{label}: read {cases:,} cases", total=cases) as reading,
        ctx.progress(f"{label}: re-decide {complaints:,} complaints", total=complaints) as deciding,
    ):
        async with ctx.pool.acquire() as conn:
            started = time.perf_counter()
            run = await what_if(conn, policy, load_roster(), on_read=reading.advance, on_decided=deciding.advance)
            return run, time.perf_counter() - started


async def run(ctx: Context) -> list[Row]:
    target = ctx.scale(100_000, quick=3_000)
    days = ctx.scale(90, quick=30)
    story = timeline(int(target / 1.28), seed=3, days=days, tag="w")
    clock = ManualClock(START)
    service = RecoveryService(ctx.pool, ctx.settings, load_policy(), load_roster(), clock, vouchers=VOUCHERS)
    topics = (ctx.settings.topic("charges"), ctx.settings.topic("complaints"))
    with ctx.progress(f"record {story.complaints:,} complaints with the service", total=story.complaints) as bar:
        started = time.perf_counter()
        await play(service, clock, story.sorted(), topics, batch=timedelta(hours=1), progress=bar.advance)
        await advance(service, clock, START + timedelta(days=days + 30), timedelta(seconds=3))
        recorded_s = time.perf_counter() - started
    events = await ctx.pool.fetchval("SELECT count(*) FROM events")
    cases = len(story.scenarios)
    tune_for_throughput()  # as `recoveryctl whatif` does
    same, same_s = await _what_if(ctx, load_policy(), "shipped policy", story.complaints, cases)
    shipped = load_policy()
    usd = shipped.limits["USD"].model_copy(update={"micro_claim_limit": Decimal("5.00")})
    candidate = shipped.model_copy(update={"version": "2", "limits": {**shipped.limits, "USD": usd}})
    other, other_s = await _what_if(ctx, candidate, "micro-claim 5.00", story.complaints, cases)
    n = same.summary.complaints
    return [
        Row("history recorded by the service in-process (1-hour batches)", story.complaints / recorded_s,
            "complaints/s", f"{story.complaints:,} complaints, {cases:,} cases, {events:,} events"),
        Row("what-if, shipped policy: read + re-decide + add up", n / same_s, "complaints/s",
            f"{same.events_read:,} events read; {same.summary.changed} changed, "
            f"{same.summary.exact:,}/{same.summary.cases:,} cases reproduced exactly; {_load()}"),
        Row("what-if, micro_claim_limit 5.00 USD", n / other_s, "complaints/s",
            f"{other.summary.changed:,} decided differently; {_load()}"),
    ]  # fmt: skip
