"""Shared pieces for the end-to-end benchmarks: services as real processes, Kafka I/O."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.registry import Context, Row
from services.recovery.domain import VoucherKey

# The recovery service derives voucher codes under a secret and does not start without one.
VOUCHER_SECRET = "bench-voucher-secret-0123456789abcdef"
VOUCHERS = VoucherKey(VOUCHER_SECRET.encode())


async def service_env(ctx: Context, prefix: str, partitions: int | None = None) -> dict[str, str]:
    """Environment for the services of one run: a fresh database, new topics (of
    ``partitions`` partitions, or TOPIC_PARTITIONS)."""
    s = ctx.settings
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers,
        "DATABASE_URL": await ctx.fresh_database(),
        "KAFKA_SESSION_TIMEOUT_MS": "2000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "RECOVERY_GROUP_ID": f"{prefix}-recovery",
        "NOTIFIER_GROUP_ID": f"{prefix}-notifier",
        "HTTP_PORT": "0",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "WARNING",
        "RECOVERY_VOUCHER_SECRET": VOUCHER_SECRET,
    }
    for logical in ("charges", "complaints", "decisions", "notifications", "dlq"):
        env[f"TOPIC_{logical.upper()}"] = await ctx.topic(f"{prefix}.{logical}", partitions)
    return env


def start(script: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Path]:
    log = Path(tempfile.mkstemp(prefix=f"bench-{script}-", suffix=".log")[1])
    exe = Path(sys.executable).parent / script
    with log.open("ab") as out:
        proc = subprocess.Popen([str(exe)], env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
    return proc, log


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


async def produce(bootstrap: str, topic: str, events: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1 << 20)
    await producer.start()
    try:
        futures = [await producer.send(topic, json.dumps(e).encode(), key=e["subject"].encode()) for e in events]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


class CpuMeter:
    """CPU time of a run's processes by role, from /proc (Linux; elsewhere it measures
    nothing): the service processes, PostgreSQL, the broker, and this benchmark's process
    (the load it offers and the collector). Per decision, these show where the machine's
    CPUs go, and so the ceiling of a run that only CPU limits."""

    ROLES = ("recovery-service", "PostgreSQL", "broker", "benchmark (load, collector)")

    def __init__(self, service_pids: list[int]) -> None:
        self.service_pids = set(service_pids)
        self._start: dict[str, float] = {}

    def snapshot(self) -> dict[str, float]:
        used = dict.fromkeys(self.ROLES, 0.0)
        tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        for entry in Path("/proc").glob("[0-9]*") if Path("/proc/self/stat").exists() else ():
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue  # gone meanwhile
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            seconds = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
            pid = int(entry.name)
            if pid in self.service_pids:
                used["recovery-service"] += seconds
            elif name.startswith("postgres"):
                used["PostgreSQL"] += seconds
            elif b"tansu" in cmdline or b"kafka.Kafka" in cmdline:
                used["broker"] += seconds
            elif pid == os.getpid():
                used["benchmark (load, collector)"] += seconds
        return used

    def start(self) -> None:
        self._start = self.snapshot()

    def rows(self, decisions: int, seconds: float | None = None) -> list[Row]:
        """Rows of CPU milliseconds per decision since ``start``; then, over ``seconds`` of
        offered load, how busy the CPUs were, or without it (a backlog, CPU-bound) the
        ceiling those milliseconds give."""
        end = self.snapshot()
        per = {role: (end[role] - self._start.get(role, 0.0)) * 1000 / decisions for role in self.ROLES}
        if not any(per.values()):
            return []
        total, cpus = sum(per.values()), os.cpu_count() or 1
        rows = [Row(f"  CPU per decision: {role}", ms, "ms") for role, ms in per.items() if ms > 0]
        if seconds is None:
            rows.append(Row(f"  ceiling if CPU alone limited it: {cpus} CPUs / {total:.2f} ms", cpus * 1000 / total,
                            "decisions/s", "the processes above sharing this machine's CPUs"))  # fmt: skip
        else:
            busy = total * decisions / 1000 / seconds / cpus * 100
            rows.append(Row(f"  the machine's {cpus} CPUs busy meanwhile", busy, "%", "the processes above"))
        return rows


class Collector:
    """Reads a topic from the beginning and notes when each matching event arrived."""

    def __init__(self, bootstrap: str, topic: str, type_: str, key: str) -> None:
        self.type, self.key = type_, key
        self.arrived: dict[str, float] = {}  # perf_counter() when it arrived here
        self.stamped: dict[str, float] = {}  # the event's own `time` (epoch seconds): when it was decided
        self.epoch_offset = time.time() - time.perf_counter()  # arrived + this: epoch seconds
        # A short fetch wait: the bundled broker holds every fetch for the whole wait, which
        # would add up to aiokafka's default 500 ms to each measured arrival.
        self._consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False,
            fetch_max_wait_ms=10,
        )  # fmt: skip

    async def start(self) -> None:
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()

    async def poll(self) -> None:
        batches = await self._consumer.getmany(timeout_ms=100, max_records=10_000)
        now = time.perf_counter()
        for records in batches.values():
            for r in records:
                e = orjson.loads(r.value)
                if e["type"] == self.type and e["data"][self.key] not in self.arrived:
                    self.arrived[e["data"][self.key]] = now
                    self.stamped[e["data"][self.key]] = datetime.fromisoformat(e["time"]).timestamp()

    async def follow(self) -> None:
        """Poll until cancelled: run as a task while producing, so each arrival is timed
        when it arrives rather than when the producer next yields."""
        while True:
            await self.poll()

    async def until(self, count: int, timeout_s: float, on_progress: Any = None) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.arrived) < count and time.monotonic() < deadline:
            await self.poll()
            if on_progress:
                on_progress(len(self.arrived))
        if len(self.arrived) < count:
            raise TimeoutError(f"{len(self.arrived)} of {count} arrived within {timeout_s:.0f} s")


@contextlib.contextmanager
def no_gc_pauses() -> Iterator[None]:
    """No cyclic garbage collection in this process while it offers load and times arrivals.

    A full collection of the benchmark's heap takes 50-90 ms here; in the middle of a run it
    would stall the load generator and the collector at once, and show up as the service's
    latency. Reference counting still frees nearly everything; what is left is collected after.
    """
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]
