"""Where the relay puts each message, on the real broker: the partition ``send(key=...)``
would pick (consumers rely on customer id -> partition), in outbox order, headers intact."""

from __future__ import annotations

import time
from collections import defaultdict

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.common.kafka import create_topics
from services.common.outbox import OutboxMessage, enqueue
from services.common.relay import OutboxRelay
from services.common.settings import CommonSettings
from tests.infra import unique

RELAY = "partitions"
PARTITIONS = 7  # more than the default 3, and prime: a wrong modulus shows
JSON_TYPE = (("content-type", b"application/json"),)
TRACED = (("content-type", b"application/json"), ("traceparent", b"00-4bf9-00f0-01"), ("x-note", "ñandú €".encode()))


def sample_keys() -> list[bytes]:
    """Customer ids as the services write them, and keys of every length up to 40 bytes
    (murmur2 treats the 1-3 trailing bytes separately), some not ASCII."""
    keys = [f"cust-{i:05d}".encode() for i in range(120)]
    keys += [bytes(range(65, 65 + n)) for n in range(1, 41)]
    keys += [f"clienté-{i}-ñ".encode() for i in range(20)]
    keys.append(b"")
    return keys


async def test_each_key_lands_on_the_partition_that_send_with_the_key_picks(
    pool: asyncpg.Pool, common_settings: CommonSettings
) -> None:
    settings = common_settings.model_copy(update={"topic_partitions": PARTITIONS})
    topic = unique("relay.partitions")
    await create_topics(settings, [topic])
    keys = sample_keys()
    # Three rounds over every key, with values of 0.5-4 KB, so one drain of 400 rows fills
    # the producer's 16 KB batches several times over per partition.
    queued: dict[bytes, list[bytes]] = defaultdict(list)
    messages = []
    for round_ in range(3):
        for i, key in enumerate(keys):
            # One value per round outgrows a whole batch: it must travel alone, in order.
            size = 40_000 if i == 7 else 500 + 97 * i % 3500
            value = f"{round_}:{key.hex()}:".encode() + b"x" * size
            headers = TRACED if i % 5 == 0 else JSON_TYPE
            messages.append(OutboxMessage(topic=topic, key=key, value=value, headers=headers))
            queued[key].append(value)
    keyless = [OutboxMessage(topic=topic, key=None, value=f"keyless-{i}".encode()) for i in range(10)]
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(conn, RELAY, messages + keyless)

    producer = AIOKafkaProducer(**{**settings.kafka_producer_options(), "max_batch_size": 16 * 1024})
    await producer.start()
    try:
        relay = OutboxRelay(pool, producer, RELAY, batch_size=400)
        sent = 0
        while n := await relay.drain_once():
            sent += n
        assert sent == len(messages) + len(keyless)
        # The reference: where a plain send with the same key puts it, on the same topic.
        expected = {key: (await (await producer.send(topic, b"ref", key=key))).partition for key in keys}
    finally:
        await producer.stop()

    records = await read_topic(settings, topic, len(messages) + len(keyless) + len(keys))
    partitions: dict[bytes, set[int]] = defaultdict(set)
    order: dict[bytes, list[bytes]] = defaultdict(list)
    for partition, read_key, value, read_headers in records:
        if read_key is None:
            assert value.startswith(b"keyless-")
            continue
        if value == b"ref":
            continue
        partitions[read_key].add(partition)
        order[read_key].append(value)
        i = keys.index(read_key)
        assert read_headers == list(TRACED if i % 5 == 0 else JSON_TYPE)
    assert {k: p.pop() if len(p) == 1 else p for k, p in partitions.items()} == expected
    assert len(set(expected.values())) == PARTITIONS  # the sample really spreads over all of them
    assert order == queued
    assert sum(1 for r in records if r[1] is None) == len(keyless)


async def read_topic(
    settings: CommonSettings, topic: str, want: int, deadline_s: float = 60
) -> list[tuple[int, bytes | None, bytes, list[tuple[str, bytes]]]]:
    """(partition, key, value, headers) of every record on ``topic``, each partition in
    offset order."""
    consumer = AIOKafkaConsumer(**settings.kafka_consumer_options(), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[tuple[int, bytes | None, bytes, list[tuple[str, bytes]]]] = []
        deadline = time.monotonic() + deadline_s
        while len(out) < want and time.monotonic() < deadline:
            for tp, batch in (await consumer.getmany(timeout_ms=500, max_records=10_000)).items():
                out.extend((tp.partition, r.key, r.value, list(r.headers)) for r in batch)
        return out
    finally:
        await consumer.stop()
