"""The outbox relay: messages queued in PostgreSQL to acknowledged on Kafka."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from bench.registry import Context, Row
from services.common.contract import new_event
from services.common.contract.events import SlaWarning
from services.common.kafka import make_producer
from services.common.outbox import enqueue, outbox_backlog, outbox_message
from services.common.relay import OutboxRelay

NAME = "relay"
DESCRIPTION = "OutboxRelay: enqueue N messages, time until Kafka acknowledged them all"
ORDER = 20

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
PER_TX = 1_000  # messages enqueued per transaction
BATCH_SIZE = 1_000  # the relay's batch (its default)


async def run(ctx: Context) -> list[Row]:
    n = ctx.scale(50_000, quick=10_000)
    relay_name = f"bench-{int(time.time())}"
    topic = await ctx.topic("relay", partitions=ctx.settings.topic_partitions)
    messages = [
        outbox_message(
            new_event(
                SlaWarning(case_id=f"case-{i}", sla_deadline=T0 + timedelta(hours=48), at=T0),
                source="bench",
                time=T0,
                subject=f"cust-{i % 5000:05d}",
                correlation_id=f"cmp-{i}",
            ),
            topic,
        )
        for i in range(n)
    ]
    size = sum(len(m.value) for m in messages) / n

    with ctx.progress("enqueue", total=n) as bar:
        started = time.perf_counter()
        for start in range(0, n, PER_TX):
            async with ctx.pool.acquire() as conn, conn.transaction():
                await enqueue(conn, relay_name, messages[start : start + PER_TX])
            bar.advance(min(PER_TX, n - start))
        enqueue_rate = n / (time.perf_counter() - started)

    producer = make_producer(ctx.settings)
    await producer.start()
    stop = asyncio.Event()
    relay = OutboxRelay(ctx.pool, producer, relay_name, batch_size=BATCH_SIZE, poll_s=0.2)
    started, cpu_started = time.perf_counter(), time.process_time()
    running = asyncio.create_task(relay.run(stop))
    try:
        with ctx.progress("relay to Kafka", total=n) as bar:
            deadline = time.monotonic() + 300
            while (left := await outbox_backlog(ctx.pool, relay_name)) > 0:
                bar.update(n - left)
                if time.monotonic() > deadline or running.done():
                    raise RuntimeError(f"the relay stalled with {left} messages left")
                await asyncio.sleep(0.02)
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            bar.update(n)
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)
        await producer.stop()
    return [
        Row("enqueue (outbox COPY)", enqueue_rate, "messages/s", f"{PER_TX:,} per transaction"),
        Row("relay drain", n / elapsed, "messages/s",
            f"{n:,} messages of ~{size:.0f} B, batch {BATCH_SIZE:,}, "
            f"{ctx.settings.topic_partitions} partitions, acks={ctx.settings.kafka_acks}"),
        # The relay shares its process's CPU with the service: what it costs there. The
        # broker and PostgreSQL run in other processes; this one also polls the backlog.
        Row("relay drain CPU", cpu / n * 1e6, "µs/message", "this process (relay, producer, backlog polling)"),
    ]  # fmt: skip
