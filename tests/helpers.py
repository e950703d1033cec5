"""Helpers for tests that drive the system over Kafka as its neighbours would."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.common.eventstore.shred import open_data
from services.recovery.domain import VoucherKey
from services.recovery.identity import People, Role

ROOT = Path(__file__).resolve().parent.parent
# The voucher secret of every test (the services refuse to start without one).
VOUCHER_SECRET = "tests-only-voucher-secret-0123456789abcdef"
VOUCHERS = VoucherKey(VOUCHER_SECRET.encode())


def cloudevent(type_: str, data: dict[str, Any], subject: str, *, event_id: str | None = None,
               time_: datetime | None = None, source: str = "tests") -> dict[str, Any]:  # fmt: skip
    return {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": source,
        "type": type_,
        "time": (time_ or datetime.now(UTC)).isoformat(),
        "subject": subject,
        "datacontenttype": "application/json",
        "data": data,
    }


async def empty_tables(pool: Any) -> None:
    """Empty every table of the database but the migrations' record (a fresh, migrated one)."""
    async with pool.acquire() as conn:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"
        )
        await conn.execute(f"TRUNCATE {', '.join(t[0] for t in tables)}")


async def sign_in(pool: Any, person_id: str, role: Role) -> dict[str, str]:
    """The headers of a person of the built-in issuer (added with ``role`` if new), signed in
    with a fresh token."""
    people = People(pool)
    if await people.get(person_id) is None:
        await people.add(person_id, role)
    return {"Authorization": f"Bearer {await people.issue_token(person_id)}"}


async def produce(bootstrap: str, topic: str, items: Iterable[tuple[str | None, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1 << 20)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value, key=key.encode() if key else None,
                                headers=[("content-type", b"application/cloudevents+json")])
            for key, value in items
        ]  # fmt: skip
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def produce_events(bootstrap: str, topic: str, events: Iterable[dict[str, Any]]) -> None:
    await produce(bootstrap, topic, ((e.get("subject"), json.dumps(e).encode()) for e in events))


class TopicReader:
    """Reads a topic from the beginning (no group) and keeps every decoded event."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.events: list[dict[str, Any]] = []
        self._consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap,
                                          auto_offset_reset="earliest", enable_auto_commit=False)  # fmt: skip

    async def __aenter__(self) -> TopicReader:
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def poll(self, seconds: float = 0.2) -> None:
        batches = await self._consumer.getmany(timeout_ms=int(seconds * 1000), max_records=5000)
        for records in batches.values():
            for r in records:
                self.events.append(json.loads(r.value))

    async def wait_for(self, predicate: Any, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [e for e in self.events if predicate(e)]
            if found:
                return found
            await self.poll()
        raise AssertionError(f"nothing matching on {self.topic} within {timeout} s; saw {len(self.events)}")

    async def wait_count(self, predicate: Any, count: int, timeout: float = 60.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [e for e in self.events if predicate(e)]
            if len(found) >= count:
                return found
            await self.poll()
        found = [e for e in self.events if predicate(e)]
        raise AssertionError(f"{len(found)} of {count} matching on {self.topic} within {timeout} s")

    async def settle(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await self.poll()


class ServiceProcess:
    """A service console script run as a real process with the test's environment."""

    def __init__(self, script: str, env: dict[str, str], log_path: Path, *args: str) -> None:
        self.script, self.args, self.log_path = script, args, log_path
        self.env = {**os.environ, **env, "HTTP_PORT": env.get("HTTP_PORT", "0")}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        exe = Path(sys.executable).parent / self.script
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([str(exe), *self.args], env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT, cwd=ROOT)  # fmt: skip
        log.close()
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class SmtpSink:
    """An aiosmtpd handler that accepts every message and keeps (sender, recipients, bytes)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


async def read_records(consumer_options: dict[str, Any], topic: str, want: int, timeout: float = 30.0) -> list[Any]:
    """The records on ``topic`` from the beginning (no group), in each partition's order,
    once ``want`` arrived (or the timeout passed)."""
    consumer = AIOKafkaConsumer(**consumer_options, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(out) < want and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                out.extend(records)
        return out
    finally:
        await consumer.stop()


def recoveryctl(env: dict[str, str], *args: str, code: int = 0) -> str:
    """Run ``recoveryctl ARGS`` as an operator would; its output, once it exited ``code``."""
    done = subprocess.run([str(Path(sys.executable).parent / "recoveryctl"), *args], env={"COLUMNS": "200", **env},
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == code, (
        f"recoveryctl {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    )
    return done.stdout


async def read_to_end(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every event on ``topic`` up to its end offsets now (what a relay has published)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            await consumer.force_metadata_update()
            partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        events: list[dict[str, Any]] = []
        behind = [tp for tp, end in ends.items() if end > 0]
        while behind:
            batches = await consumer.getmany(*behind, timeout_ms=200)
            events += [json.loads(r.value) for rs in batches.values() for r in rs]
            behind = [tp for tp in behind if await consumer.position(tp) < ends[tp]]
        return events
    finally:
        await consumer.stop()


async def opened_events(db: Any, rows: Iterable[tuple[str, Any]]) -> list[dict[str, Any]]:
    """The data of stored events, (event type, data as JSON text or dict) each, with the
    personal data the store seals under the customer's key opened: what the service recorded,
    comparable across runs (a seal's nonce differs every time)."""
    pairs = [(t, json.loads(d) if isinstance(d, str | bytes) else dict(d)) for t, d in rows]
    await open_data(db, pairs)
    return [d for _, d in pairs]


async def outbox_empty(database_url: str, *, relay: str | None = None, timeout: float = 60.0) -> None:
    """Until the relays of the database (``relay`` alone, if named) have published what they
    queued: their part of the outbox is empty."""
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + timeout
        while await conn.fetchval("SELECT count(*) FROM outbox WHERE $1::text IS NULL OR relay = $1", relay):
            assert time.monotonic() < deadline, f"the outbox was not published within {timeout} s"
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
