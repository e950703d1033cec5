"""The recovery service end to end: complaints on Kafka to decisions on recovery.decisions,
with the service as a real process on the real broker and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from bench.registry import Context, Row
from bench.services import Collector, CpuMeter, produce, service_env, start, stop
from services.recovery.settings import RecoverySettings

NAME = "recovery"
DESCRIPTION = "recovery-service: decisions/s on a backlog of complaints waiting in Kafka"
ORDER = 30
NOW = datetime.now(UTC)


def complaint_pair(i: int, tag: str) -> tuple[dict[str, Any], dict[str, Any]]:
    cust, charge = f"{tag}-c{i}", f"{tag}-ch{i}"
    kind = ("delivery_failed", "charge_disputed", "cancellation")[i % 3]
    amount = {"delivery_failed": "4.99", "charge_disputed": "2.50", "cancellation": "30.00"}[kind]
    charge_ev = _ce("billing.charge.posted.v1", cust, {
        "charge_id": charge, "customer_id": cust, "amount": amount, "currency": "USD",
        "kind": "subscription" if kind == "cancellation" else "purchase", "description": "x",
        "product": {"type": "digital"}, "posted_at": (NOW - timedelta(days=3)).isoformat()})  # fmt: skip
    complaint = _ce("complaint.filed.v1", cust, {
        "complaint_id": f"{tag}-cmp{i}", "customer": {"id": cust, "name": "N", "email": "n@example.com",
        "locale": "en-US"}, "channel": "web", "category": kind, "charge_id": charge,
        "description": "d", "filed_at": NOW.isoformat()})  # fmt: skip
    return charge_ev, complaint


def _ce(type_: str, subject: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "bench", "type": type_,
            "time": NOW.isoformat(), "subject": subject, "data": data}  # fmt: skip


async def _backlog(ctx: Context, n: int, instances: int, charges_recorded: bool = False) -> tuple[float, list[Row]]:
    """Decisions per second on a backlog of ``n`` complaints waiting in Kafka for
    ``instances`` recovery-service processes in one group, and the CPU each process took per
    decision meanwhile. Their charges wait in Kafka too (ahead of them on their own topic),
    or with ``charges_recorded`` were recorded before by a service that then stopped: the
    backlog a restart finds after the complaints piled up.

    Timed from the moment the first batch was taken in hand (the decisions' `time`; the
    services' start-up and group join left out) to the last decision's arrival. The CPU is
    measured from the first decision's arrival, so per decision made after that batch.
    """
    # Two partitions a process: with three over two processes, one would have twice the work.
    env = await service_env(ctx, f"rec{uuid.uuid4().hex[:6]}", partitions=2 * instances)
    boot = env["KAFKA_BOOTSTRAP_SERVERS"]
    pairs = [complaint_pair(i, f"b{instances}") for i in range(n)]
    with ctx.progress("backlog into Kafka", total=2 * n) as bar:
        await produce(boot, env["TOPIC_CHARGES"], [p[0] for p in pairs])
        bar.advance(n)
        if charges_recorded:
            await _record_charges(env, n)
        await produce(boot, env["TOPIC_COMPLAINTS"], [p[1] for p in pairs])
        bar.advance(n)
    collector = Collector(boot, env["TOPIC_DECISIONS"], "recovery.decision.made.v1", "complaint_id")
    await collector.start()
    procs = [start("recovery-service", env) for _ in range(instances)]
    meter = CpuMeter([proc.pid for proc, _ in procs])
    try:
        with ctx.progress(f"{instances} process(es) decide a backlog of {n:,}", total=n) as bar:
            await collector.until(1, 120)
            meter.start()  # from the first decision: the services' start-up is not counted
            await collector.until(n, 600, bar.update)
            earliest = min(collector.stamped.values())
            timed = n - sum(1 for t in collector.stamped.values() if t == earliest)
            cpu = meter.rows(timed)
    except TimeoutError as exc:
        raise RuntimeError(f"{exc}; service logs: {[str(log) for _, log in procs]}") from None
    finally:
        for proc, _ in procs:
            stop(proc)
        await collector.stop()
    return n / (max(collector.arrived.values()) + collector.epoch_offset - earliest), cpu


async def _record_charges(env: dict[str, str], n: int) -> None:
    """Let one service record the ``n`` charges waiting in Kafka, then stop it (a clean stop
    commits its offsets)."""
    proc, log = start("recovery-service", env)
    conn = await asyncpg.connect(env["DATABASE_URL"])
    try:
        deadline = time.monotonic() + 300
        while await conn.fetchval("SELECT count(*) FROM rm_charges") < n:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"the charges were not recorded; service log: {log}")
            await asyncio.sleep(0.2)
    finally:
        await conn.close()
        stop(proc)


async def run(ctx: Context) -> list[Row]:
    n = ctx.scale(10_000, quick=2_000)
    recorded, _ = await _backlog(ctx, n, 1, charges_recorded=True)
    one, cpu = await _backlog(ctx, n, 1)
    two, _ = await _backlog(ctx, n, 2)
    return [
        Row(f"backlog of {n:,} complaints (charges recorded before), first batch in hand to last decision",
            recorded, "decisions/s",
            f"one process; batches of up to {RecoverySettings().recovery_batch_max} in one transaction each"),
        Row(f"backlog of {n:,} complaints and their {n:,} charges", one, "decisions/s",
            "one process; the charges on their own topic, read alongside"),
        *cpu,
        Row("the same backlog (complaints and charges), two processes in one group", two, "decisions/s",
            "scale-out on one 2-CPU machine that also runs the broker and PostgreSQL; two partitions each"),
    ]  # fmt: skip
