"""The outbox relay on the real broker and PostgreSQL: in-process, as a process that is
killed mid-batch, and as two instances competing for one relay name."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.common.contract import CONTENT_TYPE, decode, new_event
from services.common.contract.events import SlaWarning
from services.common.kafka import make_producer
from services.common.outbox import enqueue, outbox_backlog, outbox_message
from services.common.relay import OutboxRelay
from services.common.settings import CommonSettings

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
RELAY = "decisions"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Enqueued:
    ids: list[str] = field(default_factory=list)
    by_key: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


async def enqueue_warnings(
    pool: asyncpg.Pool, topic: str, n: int, *, customers: int = 25, per_tx: int = 2_000
) -> Enqueued:
    """Queue ``n`` SLA warnings for ``customers`` customers, ``per_tx`` per transaction."""
    out = Enqueued()
    for start in range(0, n, per_tx):
        messages = []
        for i in range(start, min(n, start + per_tx)):
            customer = f"cust-{i % customers:04d}"
            event = new_event(
                SlaWarning(case_id=f"case-{i}", sla_deadline=T0 + timedelta(hours=48), at=T0),
                source="tests/relay",
                time=T0,
                subject=customer,
                correlation_id=f"complaint-{i}",
            )
            messages.append(outbox_message(event, topic))
            out.ids.append(event.id)
            out.by_key[customer].append(event.id)
        async with pool.acquire() as conn, conn.transaction():
            await enqueue(conn, RELAY, messages)
    return out


@dataclass
class Received:
    key: str
    event_id: str
    subject: str | None
    headers: dict[str, bytes]


async def consume_topic(
    settings: CommonSettings, topic: str, want_distinct: int, deadline_s: float = 60
) -> list[Received]:
    """Everything on ``topic`` from the beginning (no group), until ``want_distinct`` ids
    were seen or the deadline passed."""
    consumer = AIOKafkaConsumer(**settings.kafka_consumer_options(), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        assert partitions, f"topic {topic} has no partitions"
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        received: list[Received] = []
        distinct: set[str] = set()
        deadline = time.monotonic() + deadline_s
        while len(distinct) < want_distinct and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for records in batches.values():
                for r in records:
                    event = decode(r.value).envelope
                    received.append(Received(r.key.decode(), event.id, event.subject, dict(r.headers)))
                    distinct.add(event.id)
        return received
    finally:
        await consumer.stop()


async def wait_for(
    condition: Callable[[], Awaitable[bool]],
    timeout_s: float,
    what: str,
    detail: Callable[[], str] = str,
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}\n{detail()}")


@contextlib.asynccontextmanager
async def running_relay(
    pool: asyncpg.Pool, producer: Any, *, batch_size: int, poll_s: float
) -> AsyncIterator[OutboxRelay]:
    """An OutboxRelay (name ``RELAY``) running in a task until the block ends."""
    stop = asyncio.Event()
    relay = OutboxRelay(pool, producer, RELAY, batch_size=batch_size, poll_s=poll_s)
    running = asyncio.create_task(relay.run(stop))
    try:
        yield relay
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)


def first_delivery_order(received: list[Received]) -> dict[str, list[str]]:
    """Per key, the ids in the order of their first delivery (redeliveries dropped by id, as
    consumers do)."""
    seen: set[str] = set()
    order: dict[str, list[str]] = defaultdict(list)
    for r in received:
        if r.event_id not in seen:
            seen.add(r.event_id)
            order[r.key].append(r.event_id)
    return order


async def test_every_queued_message_arrives_keyed_by_customer_in_order_and_the_outbox_empties(
    pool: asyncpg.Pool, common_settings: CommonSettings
) -> None:
    topic = common_settings.topic_decisions
    queued = await enqueue_warnings(pool, topic, 1_000, per_tx=100)
    producer = make_producer(common_settings)
    await producer.start()
    try:
        async with running_relay(pool, producer, batch_size=150, poll_s=0.2) as relay:
            await wait_for(lambda: _empty(pool), 30, "the outbox to drain")
    finally:
        await producer.stop()

    received = await consume_topic(common_settings, topic, len(queued.ids))
    assert relay.published == len(queued.ids)
    assert sorted(r.event_id for r in received) == sorted(queued.ids)  # each exactly once
    assert all(r.key == r.subject for r in received)
    assert all(r.headers.get("content-type") == CONTENT_TYPE.encode() for r in received)
    assert first_delivery_order(received) == queued.by_key
    assert await outbox_backlog(pool, RELAY) == 0


async def test_a_relay_killed_mid_batch_loses_nothing_and_the_next_one_finishes(
    pool: asyncpg.Pool,
    settings_env: dict[str, str],
    common_settings: CommonSettings,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    n, batch = 20_000, 200
    topic = common_settings.topic_decisions
    queued = await enqueue_warnings(pool, topic, n)
    env = {**os.environ, **settings_env}

    first = RelayProcess(env, tmp_path / "relay-1.log", batch)
    try:
        # Let it publish a few batches first, so the kill lands mid-stream.
        await wait_for(lambda: _backlog_below(pool, n - 5 * batch), 60, "the first batches", first.log_tail)
    finally:
        first.kill()
    remaining = await outbox_backlog(pool, RELAY)
    assert 0 < remaining < n, f"killed too late to test anything ({remaining} left)"

    second = RelayProcess(env, tmp_path / "relay-2.log", batch)
    try:
        await wait_for(lambda: _empty(pool), 120, "the second relay to drain", second.log_tail)
    finally:
        code = second.terminate()
    assert code == 0, f"the relay did not stop cleanly on SIGTERM:\n{second.log_tail()}"

    received = await consume_topic(common_settings, topic, n, deadline_s=120)
    counts = Counter(r.event_id for r in received)
    missing = set(queued.ids) - counts.keys()
    duplicates = sum(c - 1 for c in counts.values())
    record_property("relay_kill_duplicates", duplicates)
    print(f"killed with {remaining} of {n} queued; {duplicates} duplicates delivered")
    assert not missing, f"{len(missing)} events never arrived"
    # Only the batch in flight at the kill can be published twice.
    assert duplicates <= batch
    assert first_delivery_order(received) == queued.by_key


async def test_two_relays_with_one_name_elect_one_leader_and_keep_each_key_in_order(
    database_url: str, pool: asyncpg.Pool, common_settings: CommonSettings
) -> None:
    topic = common_settings.topic_decisions
    queued = await enqueue_warnings(pool, topic, 2_000, per_tx=250)
    # Separate pools and producers: as two processes would have.
    pools = [await asyncpg.create_pool(database_url, min_size=1, max_size=3) for _ in range(2)]
    producers = [make_producer(common_settings) for _ in range(2)]
    for p in producers:
        await p.start()
    relays = [OutboxRelay(pl, pr, RELAY, batch_size=100, poll_s=0.1) for pl, pr in zip(pools, producers, strict=True)]
    stops = [asyncio.Event(), asyncio.Event()]
    tasks = [asyncio.create_task(r.run(s)) for r, s in zip(relays, stops, strict=True)]
    try:
        await wait_for(lambda: _empty(pool), 30, "the outbox to drain")
        assert sorted(r.is_leader for r in relays) == [False, True]
        assert sorted(r.published for r in relays) == [0, len(queued.ids)]
        leader = 0 if relays[0].is_leader else 1

        # The standby takes over once the leader stops, and publishes what comes next.
        stops[leader].set()
        await asyncio.wait_for(tasks[leader], 10)
        more = await enqueue_warnings(pool, topic, 300, per_tx=100)
        await wait_for(lambda: _empty(pool), 30, "the standby to take over")
        assert relays[1 - leader].published == len(more.ids)
    finally:
        for s in stops:
            s.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        for p in producers:
            await p.stop()
        for pl in pools:
            await pl.close()

    received = await consume_topic(common_settings, topic, len(queued.ids) + len(more.ids))
    assert len(received) == len(queued.ids) + len(more.ids)
    expected = {k: v + more.by_key.get(k, []) for k, v in queued.by_key.items()}
    assert first_delivery_order(received) == expected


# --------------------------------------------------------------------------- helpers


async def _empty(pool: asyncpg.Pool) -> bool:
    return await outbox_backlog(pool, RELAY) == 0


async def _backlog_below(pool: asyncpg.Pool, n: int) -> bool:
    return await outbox_backlog(pool, RELAY) < n


class RelayProcess:
    """``python -m services.common.relay_main`` with its log in a file."""

    def __init__(self, env: dict[str, str], log: Path, batch_size: int) -> None:
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "services.common.relay_main", "--relay", RELAY,
                 "--batch-size", str(batch_size), "--poll-s", "0.2"],
                env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout_s: float = 15) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return None

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class _HeldProducer:
    """The real producer, with its first batch held until ``release`` is set."""

    def __init__(self, producer: Any) -> None:
        self._producer = producer
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._producer, name)

    async def send_batch(self, *args: Any, **kwargs: Any) -> Any:
        if not self.release.is_set():
            self.holding.set()
            await self.release.wait()
        return await self._producer.send_batch(*args, **kwargs)


async def test_a_commit_notified_while_a_batch_is_in_flight_is_published_without_waiting_for_the_poll(
    pool: asyncpg.Pool, common_settings: CommonSettings
) -> None:
    """The relay is woken by NOTIFY; one that arrives while it is publishing a batch must
    wake it again right after, not be lost until the next commit or poll (minutes here)."""
    topic = common_settings.topic_decisions
    first = await enqueue_warnings(pool, topic, 5)
    real = make_producer(common_settings)
    await real.start()
    producer = _HeldProducer(real)
    try:
        async with running_relay(pool, producer, batch_size=1000, poll_s=300) as relay:
            await asyncio.wait_for(producer.holding.wait(), 30)  # the first batch is in flight
            second = await enqueue_warnings(pool, topic, 5)  # committed: NOTIFY sent now
            await wait_for(lambda: _woken(relay), 15, "the notification to reach the relay mid-batch")
            producer.release.set()
            await wait_for(lambda: _empty(pool), 15, "the second commit to be published (poll_s is 300 s)")
    finally:
        await real.stop()
    received = await consume_topic(common_settings, topic, 10)
    assert sorted({r.event_id for r in received}) == sorted(first.ids + second.ids)


async def test_a_commit_wakes_each_relay_it_queued_messages_for(pool: asyncpg.Pool) -> None:
    """A transaction queues messages for three relays (two of them in one statement): at its
    commit each relay is notified, once (the outbox trigger runs per statement and notifies
    each relay its rows name), and none before."""

    def message(i: int) -> Any:
        event = new_event(SlaWarning(case_id=f"case-{i}", sla_deadline=T0 + timedelta(hours=48), at=T0),
                          source="tests/relay", time=T0, subject="cust-1")  # fmt: skip
        return outbox_message(event, "some.topic")

    heard: list[str] = []

    def on_notify(*args: Any) -> None:
        heard.append(args[3])

    async with pool.acquire() as listener:
        await listener.add_listener("outbox", on_notify)
        try:
            async with pool.acquire() as conn, conn.transaction():
                await conn.copy_records_to_table(
                    "outbox", columns=("relay", "topic", "key", "value", "headers", "event_id"),
                    records=[(relay, "some.topic", b"k", b"{}", "[]", f"e-{relay}-{i}")
                             for i, relay in enumerate(["relay-a", "relay-b", "relay-a", "relay-b", "relay-a"])],
                )  # fmt: skip
                await enqueue(conn, "relay-c", [message(i) for i in range(3)])
                # Notifications reach a listener in commit order: once a marker committed
                # after these statements is heard, any they had sent early is heard too.
                await _notify_marker(pool, "before the commit")
                await wait_for(lambda: _heard(heard, "before the commit"), 10, "the first marker")
                assert heard == ["before the commit"]  # nothing before the commit
            await wait_for(lambda: _heard(heard, "relay-c", "relay-a", "relay-b"), 10, "a notification per relay")
            await _notify_marker(pool, "after the commit")
            await wait_for(lambda: _heard(heard, "after the commit"), 10, "the second marker")
        finally:
            await listener.remove_listener("outbox", on_notify)
    assert heard[0] == "before the commit"
    assert heard[-1] == "after the commit"
    assert sorted(heard[1:-1]) == ["relay-a", "relay-b", "relay-c"]  # once each, and no more


async def _notify_marker(pool: asyncpg.Pool, payload: str) -> None:
    """A notification on the outbox channel, committed now, behind everything committed before."""
    await pool.execute("SELECT pg_notify('outbox', $1)", payload)


async def _heard(heard: list[str], *payloads: str) -> bool:
    return set(payloads) <= set(heard)


async def _woken(relay: OutboxRelay) -> bool:
    return relay._wake.is_set()


async def test_a_relay_whose_connection_is_cut_takes_a_new_one_and_carries_on(
    pool: asyncpg.Pool, common_settings: CommonSettings
) -> None:
    """The relay listens, holds its leadership and drains on one connection: when PostgreSQL
    ends that session, it must elect itself again on a new one and keep publishing."""
    topic = common_settings.topic_decisions
    first = await enqueue_warnings(pool, topic, 5)
    producer = make_producer(common_settings)
    await producer.start()
    try:
        async with running_relay(pool, producer, batch_size=1000, poll_s=0.2) as relay:
            await wait_for(lambda: _empty(pool), 30, "the first messages to be published")
            cut = await pool.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_locks"
                " WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()"
            )
            assert cut == 1  # the leader's session, ended
            second = await enqueue_warnings(pool, topic, 5)
            await wait_for(lambda: _empty(pool), 30, "the relay to publish on a new connection")
            assert relay.is_leader
    finally:
        await producer.stop()
    received = await consume_topic(common_settings, topic, 10)
    assert sorted({r.event_id for r in received}) == sorted(first.ids + second.ids)
