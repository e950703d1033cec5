"""No outbox row blocks the rows behind it, on the real broker and PostgreSQL: a row refused
for good is parked with its error, the rest are published in order, the gauge counts it,
and `recoveryctl outbox retry` queues it again."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError, RequestTimedOutError
from prometheus_client import REGISTRY

from services.common.gauges import GaugeUpdater
from services.common.outbox import OutboxMessage, enqueue, outbox_backlog
from services.common.relay import OutboxRelay
from services.common.settings import CommonSettings
from tests.helpers import read_records, recoveryctl
from tests.integration.test_relay import running_relay, wait_for

RELAY = "decisions"  # as running_relay names it
LIMIT = 64 * 1024
BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]


def message(topic: str, key: str | None, n: int, size: int = 200) -> OutboxMessage:
    return OutboxMessage(topic=topic, key=key.encode() if key else None, value=f"{n}:".encode() + b"x" * size)


async def queue(pool: asyncpg.Pool, messages: list[OutboxMessage]) -> list[int]:
    """Queue ``messages`` in one transaction; return their outbox ids, in order."""
    async with pool.acquire() as conn, conn.transaction():
        before = await conn.fetchval("SELECT coalesce(max(id), 0) FROM outbox")
        await enqueue(conn, RELAY, messages)
        ids: list[int] = [r[0] for r in await conn.fetch("SELECT id FROM outbox WHERE id > $1 ORDER BY id", before)]
    return ids


async def producer_with_limit(settings: CommonSettings, limit: int) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(**{**settings.kafka_producer_options(), "max_request_size": limit})
    await producer.start()
    return producer


async def published(settings: CommonSettings, topic: str, want: int) -> dict[str | None, list[bytes]]:
    """Per key, the values on ``topic`` in the order they arrived, once ``want`` arrived."""
    by_key: dict[str | None, list[bytes]] = defaultdict(list)
    for r in await read_records(settings.kafka_consumer_options(), topic, want):
        by_key[r.key.decode() if r.key is not None else None].append(r.value)
    return by_key


async def parked(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return list(await pool.fetch("SELECT id, topic, value, error FROM outbox_parked ORDER BY id"))


async def _outbox_empty(pool: asyncpg.Pool) -> bool:
    return await outbox_backlog(pool, RELAY) == 0


async def test_a_row_too_large_is_parked_and_the_rows_behind_it_are_published_across_drains(
    pool: asyncpg.Pool, common_settings: CommonSettings
) -> None:
    topic = common_settings.topic_decisions
    # Batches of 5: the first large row is the last of a drain, the second (no key) in the
    # middle of the next; each has rows of its own key behind it.
    messages = [message(topic, f"cust-{i % 2}", i) for i in range(12)]
    messages[4] = message(topic, "cust-0", 4, size=LIMIT * 2)
    messages[7] = message(topic, None, 7, size=LIMIT * 2)
    ids = await queue(pool, messages)
    producer = await producer_with_limit(common_settings, LIMIT)
    try:
        relay = OutboxRelay(pool, producer, RELAY, batch_size=5, max_request_size=LIMIT)
        while await relay.drain_once():
            pass
    finally:
        await producer.stop()

    rows = await parked(pool)
    assert [r["id"] for r in rows] == [ids[4], ids[7]]
    assert all(r["error"].startswith("MessageSizeTooLargeError") for r in rows)
    assert (relay.parked, relay.published) == (2, 10)
    assert await outbox_backlog(pool, RELAY) == 0
    by_key = await published(common_settings, topic, 10)
    sent = [m for i, m in enumerate(messages) if i not in (4, 7)]
    assert by_key == {k: [m.value for m in sent if m.key == k.encode()] for k in ("cust-0", "cust-1")}


class _BrokerAnswer:
    """The real producer, except that a record batch for which ``refuse`` gives an error
    fails with it, as it would with that answer from the broker."""

    def __init__(self, producer: Any) -> None:
        self._producer = producer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._producer, name)

    def refuse(self, batch: Any) -> Exception | None:
        return None

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> asyncio.Future[Any]:
        if (error := self.refuse(batch)) is not None:
            answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            answer.set_exception(error)
            return answer
        return await self._producer.send_batch(batch, topic, partition=partition)  # type: ignore[no-any-return]


class _TopicLimit(_BrokerAnswer):
    """Apache Kafka's answer to a record batch over the topic's max.message.bytes
    (MESSAGE_TOO_LARGE, for the whole batch): the bundled broker takes batches of any size."""

    def __init__(self, producer: Any, limit: int) -> None:
        super().__init__(producer)
        self._limit = limit
        self.refused = 0

    def refuse(self, batch: Any) -> Exception | None:
        if batch.size() <= self._limit:
            return None
        self.refused += 1
        return MessageSizeTooLargeError()  # type: ignore[no-any-return]


async def test_a_batch_the_broker_refuses_is_sent_again_row_by_row_in_order_and_only_the_row_at_fault_is_parked(
    pool: asyncpg.Pool, common_settings: CommonSettings
) -> None:
    topic = common_settings.topic_decisions
    # Rows of 3 KB in record batches of 16 KiB: a full batch (five rows) is over the topic's
    # 14,000 bytes and refused whole, a batch of up to four rows is taken; one row of 20 KB
    # is refused even alone. Refused batches are sent again row by row; a partition's later
    # batch must not overtake them, or a customer's messages would arrive out of order.
    messages = [message(topic, f"cust-{i % 3}", i, size=3_000) for i in range(30)]
    messages[4] = message(topic, "cust-1", 4, size=20_000)
    ids = await queue(pool, messages)
    real = AIOKafkaProducer(**{**common_settings.kafka_producer_options(), "max_batch_size": 16 * 1024})
    await real.start()
    producer = _TopicLimit(real, 14_000)
    try:
        relay = OutboxRelay(pool, producer, RELAY, batch_size=1000)
        while await relay.drain_once():
            pass
    finally:
        await real.stop()

    assert producer.refused >= 2  # a batch, then the row alone
    assert [r["id"] for r in await parked(pool)] == [ids[4]]
    assert (relay.published, relay.parked) == (len(messages) - 1, 1)
    by_key = await published(common_settings, topic, len(messages) - 1)
    sent = [m for i, m in enumerate(messages) if i != 4]
    assert by_key == {f"cust-{c}": [m.value for m in sent if m.key == f"cust-{c}".encode()] for c in range(3)}


class _TimesOut(_BrokerAnswer):
    """Its first ``times`` record batches time out, as they may while a partition changes leader."""

    def __init__(self, producer: Any, times: int) -> None:
        super().__init__(producer)
        self.times = times

    def refuse(self, batch: Any) -> Exception | None:
        if not self.times:
            return None
        self.times -= 1
        return RequestTimedOutError()  # type: ignore[no-any-return]


async def test_a_transient_error_parks_nothing_and_the_batch_is_published_on_the_next_try(
    pool: asyncpg.Pool, common_settings: CommonSettings
) -> None:
    topic = common_settings.topic_decisions
    messages = [message(topic, "cust-0", i) for i in range(5)]
    await queue(pool, messages)
    real = await producer_with_limit(common_settings, LIMIT)
    producer = _TimesOut(real, times=2)  # the batch, and again: a row sent alone is not parked
    try:
        async with running_relay(pool, producer, batch_size=100, poll_s=0.05) as relay:
            await wait_for(lambda: _outbox_empty(pool), 30, "the outbox to drain after the retry")
    finally:
        await real.stop()
    assert producer.times == 0
    assert await parked(pool) == []
    assert relay.parked == 0
    assert (await published(common_settings, topic, 5))["cust-0"] == [m.value for m in messages]


async def test_the_gauge_counts_the_parked_rows_and_recoveryctl_outbox_retry_queues_them_again_at_the_end(
    pool: asyncpg.Pool, common_settings: CommonSettings, settings_env: dict[str, str]
) -> None:
    topic = common_settings.topic_decisions
    messages = [message(topic, "cust-0", 0), message(topic, "cust-0", 1, size=LIMIT * 2), message(topic, "cust-0", 2)]
    ids = await queue(pool, messages)
    producer = await producer_with_limit(common_settings, LIMIT)
    try:
        relay = OutboxRelay(pool, producer, RELAY, max_request_size=LIMIT)
        assert await relay.drain_once() == 3
        await GaugeUpdater(pool, RELAY, list).update()
        assert REGISTRY.get_sample_value("outbox_parked", {"relay": RELAY}) == 1

        env = {**os.environ, **settings_env}
        listed = json.loads(recoveryctl(env, "outbox", "parked", "--json"))
        assert [(r["id"], r["relay"], r["topic"], r["bytes"]) for r in listed] == [
            (ids[1], RELAY, topic, len(messages[1].value))
        ]
        assert listed[0]["error"].startswith("MessageSizeTooLargeError")
        assert "no parked row 999999" in recoveryctl(env, "outbox", "retry", "999999", code=1)
        recoveryctl(env, "outbox", "retry", str(ids[1]))

        assert await parked(pool) == []
        (requeued,) = await pool.fetch("SELECT id, value FROM outbox WHERE relay = $1", RELAY)
        assert requeued["id"] > ids[2]
        assert requeued["value"] == messages[1].value
        await GaugeUpdater(pool, RELAY, list).update()
        assert REGISTRY.get_sample_value("outbox_parked", {"relay": RELAY}) == 0
    finally:
        await producer.stop()
    # Published once the producer takes it (here: a relay with a larger limit).
    bigger = await producer_with_limit(common_settings, 4 * LIMIT)
    try:
        assert await OutboxRelay(pool, bigger, RELAY).drain_once() == 1
    finally:
        await bigger.stop()
    # The parked row arrives after the one queued behind it: out of order, as documented.
    assert (await published(common_settings, topic, 3))["cust-0"] == [messages[i].value for i in (0, 2, 1)]
