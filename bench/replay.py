"""Replay: events folded per second from PostgreSQL by `replay rebuild`, on a store written
by the recovery application itself (charges, cases opened, contacts, decisions)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import asyncpg

from bench.registry import Context, Row
from bench.services import VOUCHERS
from services.common.clock import ManualClock
from services.common.contract import encode, new_event
from services.common.contract.events import ChargePosted, ComplaintFiled
from services.common.gc_tuning import tune_for_throughput
from services.common.records import InboundRecord
from services.recovery.application import RecoveryService
from services.recovery.domain.policy import load_policy
from services.recovery.domain.roster import load_roster
from services.recovery.replay.rebuild import Rebuild, parse_projections

NAME = "replay"
DESCRIPTION = "replay rebuild: events folded/s from PostgreSQL into the read models, and the fold alone"
ORDER = 25
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
BATCH = 500  # records per live batch, as the service's default


def _story(i: int, at: datetime) -> list[bytes]:
    cust, charge = f"cust-{i % 4000}", f"ch-{i}"
    kind = ("delivery_failed", "charge_disputed", "cancellation", "damaged_item")[i % 4]
    amount = {"delivery_failed": "4.99", "charge_disputed": "2.50", "cancellation": "30.00",
              "damaged_item": "80.00"}[kind]  # fmt: skip
    posted = ChargePosted.model_validate({
        "charge_id": charge, "customer_id": cust, "amount": amount, "currency": "USD",
        "kind": "subscription" if kind == "cancellation" else "purchase", "description": "x",
        "product": {"type": "physical" if kind == "damaged_item" else "digital"},
        "posted_at": (at - timedelta(days=3)).isoformat()})  # fmt: skip
    claim = {"claimed_amount": amount, "currency": "USD"} if i % 4 == 3 else {}
    filed = ComplaintFiled.model_validate({
        "complaint_id": f"cmp-{i}", "customer": {"id": cust, "name": "N", "email": "n@example.com",
        "locale": "en-US"}, "channel": "web", "category": kind, "charge_id": charge, "description": "d",
        "filed_at": at.isoformat(), **claim})  # fmt: skip
    return [encode(new_event(d, source="bench", time=at, subject=cust)) for d in (posted, filed)]


async def _fill(ctx: Context, pool: asyncpg.Pool, stories: int) -> int:
    """The store as the live service writes it: batches of charges and complaints decided."""
    clock = ManualClock(T0)
    service = RecoveryService(pool, ctx.settings, load_policy(), load_roster(), clock, vouchers=VOUCHERS)
    values = [v for i in range(stories) for v in _story(i, T0)]
    with ctx.progress(f"live run: {stories:,} stories", total=len(values)) as bar:
        for start in range(0, len(values), BATCH):
            chunk = values[start : start + BATCH]
            clock.advance(timedelta(seconds=2))
            await service.handle_records([InboundRecord("b", 0, j, None, v) for j, v in enumerate(chunk)])
            bar.advance(len(chunk))
    head: int = await pool.fetchval("SELECT max(global_position) FROM events")
    return head


async def _fold_only(url: str, page: int) -> tuple[int, float]:
    """Read and fold every case and charge event, writing nothing: the rebuild minus SQL writes."""
    from services.recovery.replay.fold import Folder, types_for, whole_transactions
    from services.recovery.replay.rebuild import _PAGE

    projections = parse_projections(None)
    folder, types = Folder(projections), types_for(projections)
    conn = await asyncpg.connect(url)
    try:
        started, position = time.perf_counter(), 0
        while rows := await conn.fetch(_PAGE, position, types, page):
            if len(rows) == page:
                rows = list(whole_transactions(rows)) or rows  # (a page inside one transaction: fold on)
            folder.fold(rows)
            folder.take()
            position = rows[-1][0]
        return folder.folded, time.perf_counter() - started
    finally:
        await conn.close()


async def run(ctx: Context) -> list[Row]:
    stories = ctx.scale(25_000, quick=4_000)
    url = await ctx.fresh_database()
    pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
    assert pool is not None
    try:
        head = await _fill(ctx, pool, stories)
    finally:
        await pool.close()
    rows: list[Row] = []
    tune_for_throughput()  # as `recoveryctl replay rebuild` does
    folded, seconds = await _fold_only(url, 5000)
    rows.append(Row(f"fold only: read + decode + apply, {folded:,} events", folded / seconds, "events/s",
                    "pages of 5,000 in global order, read then folded in turn; no writes"))  # fmt: skip
    with ctx.progress(f"rebuild of {head:,} events", total=head) as bar:
        started = time.perf_counter()
        outcome = await Rebuild(lambda: asyncpg.connect(url), load_policy(), parse_projections(None),
                                on_page=lambda p: bar.update(p.position)).run()  # fmt: skip
        seconds = time.perf_counter() - started
    rows.append(Row(f"rebuild of {outcome.events:,} events, swapped in", outcome.events / seconds, "events/s",
                    f"{outcome.rows['rm_cases']:,} cases, {outcome.rows['rm_charges']:,} charges; "
                    "pages of 5,000, each written and checkpointed"))  # fmt: skip
    return rows
