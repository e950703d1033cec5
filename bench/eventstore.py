"""The PostgreSQL event store: appends one per transaction, batched appends, ordered reads."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.registry import Context, Row
from services.common.eventstore import NO_STREAM, AppendRequest, NewEvent
from services.common.eventstore.postgres import PostgresEventStore

NAME = "eventstore"
DESCRIPTION = "PostgresEventStore: single appends, batched appends, read_all in global order"
ORDER = 10

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
BATCH = 500  # events per append call
PER_STREAM = 10  # events per stream in a batch: 50 streams per call
PAGE = 5_000  # read_all page size


def decision(n: int) -> NewEvent:
    """An event shaped like a recovery decision (~700 bytes of JSON)."""
    data: dict[str, Any] = {
        "case_id": f"case-{n}",
        "complaint_id": f"cmp-{n}",
        "customer": {"id": f"cust-{n % 5000:05d}", "name": "Ana Gómez",
                     "email": "ana@example.com", "locale": "es-CO"},
        "outcome": "resolved",
        "remedies": [{"type": "refund", "charge_id": f"ch-{n}", "amount": "4.99",
                      "currency": "USD", "settlement": "3-5 business days"}],
        "reasons": [{"code": "late_delivery", "text": "The parcel arrived after the date."}],
        "policy": {"id": "default", "version": "3", "rule": "late-delivery-refund"},
        "decided_by": "policy",
        "case_owner": {"id": "agent-7", "name": "Luis Pérez", "email": "luis@example.com"},
        "decided_at": (T0 + timedelta(seconds=n)).isoformat(),
        "sla_deadline": (T0 + timedelta(hours=48)).isoformat(),
        "within_sla": True,
    }  # fmt: skip
    return NewEvent(
        event_id=str(uuid.uuid4()),
        event_type="recovery.decision.made.v1",
        data=data,
        occurred_at=T0 + timedelta(seconds=n),
        metadata={"correlationid": f"cmp-{n}", "causationid": str(uuid.uuid4())},
    )


async def single_appends(ctx: Context, store: PostgresEventStore, n: int, writers: int) -> float:
    """``n`` appends of one event, each its own transaction, by ``writers`` concurrent tasks."""
    events = [decision(i) for i in range(n)]
    with ctx.progress(f"single appends x{writers}", total=n) as bar:

        async def writer(w: int) -> None:
            for i in range(w, n, writers):
                stream = f"single-{writers}-{w}-{i}"
                await store.append([AppendRequest(stream, NO_STREAM, [events[i]])])
                bar.advance()

        started = time.perf_counter()
        await asyncio.gather(*(writer(w) for w in range(writers)))
        return n / (time.perf_counter() - started)


async def batched_appends(ctx: Context, store: PostgresEventStore, n: int) -> float:
    calls = []
    for start in range(0, n, BATCH):
        events = [decision(i) for i in range(start, min(n, start + BATCH))]
        calls.append(
            [
                AppendRequest(f"case-{start + j}", NO_STREAM, events[j : j + PER_STREAM])
                for j in range(0, len(events), PER_STREAM)
            ]
        )
    with ctx.progress(f"batched appends ({BATCH}/call)", total=n) as bar:
        started = time.perf_counter()
        for requests in calls:
            await store.append(requests)
            bar.advance(sum(len(r.events) for r in requests))
        return n / (time.perf_counter() - started)


async def ordered_reads(ctx: Context, store: PostgresEventStore) -> tuple[int, float]:
    head = await store.head_position()
    with ctx.progress(f"read_all, pages of {PAGE}", total=head) as bar:
        started = time.perf_counter()
        position, count = 0, 0
        while True:
            page = await store.read_all(after_position=position, limit=PAGE)
            if not page:
                break
            position = page[-1].global_position
            count += len(page)
            bar.advance(len(page))
        return count, count / (time.perf_counter() - started)


async def run(ctx: Context) -> list[Row]:
    store = PostgresEventStore(ctx.pool)
    sample = ctx.scale(5_000, quick=1_000)
    n = ctx.scale(100_000, quick=20_000)
    one = await single_appends(ctx, store, sample, writers=1)
    eight = await single_appends(ctx, store, sample, writers=8)
    batched = await batched_appends(ctx, store, n)
    count, reads = await ordered_reads(ctx, store)
    return [
        Row("append, 1 event/transaction", one, "events/s", f"{sample:,} appends, one writer"),
        Row("append, 1 event/transaction", eight, "events/s", f"{sample:,} appends, 8 writers"),
        Row("append, batched", batched, "events/s",
            f"{n:,} events, {BATCH}/call over {BATCH // PER_STREAM} streams"),
        Row("read_all in global order", reads, "events/s", f"{count:,} events, pages of {PAGE:,}"),
    ]  # fmt: skip
