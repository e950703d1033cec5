"""The recovery service's latency, complaint to decision, at a fixed offered rate, and where
that time goes: before the service takes the complaint in hand, and after."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from bench.recovery import complaint_pair
from bench.registry import Context, Row
from bench.services import Collector, CpuMeter, no_gc_pauses, percentile, produce, service_env, start, stop

NAME = "recovery-latency"
DESCRIPTION = "recovery-service: latency complaint → decision at a fixed offered rate, and its parts"
ORDER = 31


async def run(ctx: Context) -> list[Row]:
    rate, seconds = 500, ctx.scale(10, quick=4)
    env = await service_env(ctx, f"rec{uuid.uuid4().hex[:6]}")
    boot = env["KAFKA_BOOTSTRAP_SERVERS"]
    collector = Collector(boot, env["TOPIC_DECISIONS"], "recovery.decision.made.v1", "complaint_id")
    await collector.start()
    proc, log = start("recovery-service", env)
    try:
        # Warm up (group joined, connections open), then charges first and complaints paced
        # at `rate`/s, each timed from its send to its decision's arrival on the topic.
        warm = [complaint_pair(i, "w") for i in range(50)]
        await produce(boot, env["TOPIC_CHARGES"], [p[0] for p in warm])
        await produce(boot, env["TOPIC_COMPLAINTS"], [p[1] for p in warm])
        await collector.until(len(warm), 120)
        total = rate * seconds
        live = [complaint_pair(i, "l") for i in range(total)]
        await produce(boot, env["TOPIC_CHARGES"], [p[0] for p in live])
        await asyncio.sleep(1)  # let the service record them: complaints then find their charge
        sent: dict[str, float] = {}  # perf_counter() at send
        sent_wall: dict[str, float] = {}  # and the wall clock, to compare with the decision's time
        producer = AIOKafkaProducer(bootstrap_servers=boot, linger_ms=0)
        await producer.start()
        follower: asyncio.Task[None] | None = None
        try:
            # Everything the load generator can do ahead is done ahead (encoding, the partition
            # of each key), so that sending costs this process, which shares the CPUs, the least.
            partitions = sorted(await producer.partitions_for(env["TOPIC_COMPLAINTS"]))
            partitioner = DefaultPartitioner()
            ready = []
            for _, c in live:
                key = c["subject"].encode()
                partition = partitioner(key, partitions, partitions)
                ready.append((c["data"]["complaint_id"], orjson.dumps(c), key, partition))
            with ctx.progress(f"offer {rate}/s for {seconds} s", total=total) as bar, no_gc_pauses():
                follower = asyncio.create_task(collector.follow())
                meter = CpuMeter([proc.pid])
                meter.start()
                t0 = time.perf_counter()
                for i, (complaint_id, value, key, partition) in enumerate(ready):
                    due = t0 + i / rate
                    if (wait := due - time.perf_counter()) > 0:
                        await asyncio.sleep(wait)
                    sent[complaint_id], sent_wall[complaint_id] = time.perf_counter(), time.time()
                    await producer.send(env["TOPIC_COMPLAINTS"], value, key=key, partition=partition)
                    bar.advance(1)
                await producer.flush()
        finally:
            await producer.stop()
            if follower is not None:
                follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follower
        await collector.until(len(warm) + total, 120)
        cpu = meter.rows(total, time.perf_counter() - t0)
    except TimeoutError as exc:
        raise RuntimeError(f"{exc}; service log: {log}") from None
    finally:
        stop(proc)
        await collector.stop()
    total_ms = [(collector.arrived[k] - t) * 1000 for k, t in sent.items()]
    # The decision's `time` is when the service took the complaint's batch in hand.
    before = [(collector.stamped[k] - t) * 1000 for k, t in sent_wall.items()]
    after = [t - b for t, b in zip(total_ms, before, strict=True)]
    return [
        Row(f"latency complaint → decision at {rate}/s, p50", percentile(total_ms, 50), "ms"),
        Row(f"latency complaint → decision at {rate}/s, p99", percentile(total_ms, 99), "ms"),
        Row("  of which sent → in the service's hands, p50 / p99",
            percentile(before, 50), "ms", f"p99 {percentile(before, 99):.0f} ms: broker, fetch wait, batching"),
        Row("  of which in hand → on recovery.decisions, p50 / p99",
            percentile(after, 50), "ms", f"p99 {percentile(after, 99):.0f} ms: decide, commit, relay, broker"),
        *cpu,
    ]  # fmt: skip
