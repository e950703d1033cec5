"""The lag and outbox gauges on the real broker and PostgreSQL: a consumer group that handled
part of a topic shows the rest as lag, per partition; queued messages show as the backlog."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import REGISTRY

from services.common.contract import new_event
from services.common.contract.events import SlaWarning
from services.common.gauges import GaugeUpdater
from services.common.kafka import create_topics
from services.common.outbox import enqueue, outbox_message
from services.common.settings import CommonSettings


def _lag(group: str, topic: str, partition: int) -> float | None:
    return REGISTRY.get_sample_value(
        "kafka_consumer_lag", {"group": group, "topic": topic, "partition": str(partition)}
    )


async def test_lag_is_what_the_group_has_not_committed_on_each_partition(
    pool: asyncpg.Pool, common_settings: CommonSettings
) -> None:
    boot = common_settings.kafka_bootstrap_servers
    topic, group = f"lag.{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    await create_topics(common_settings, [topic])  # TOPIC_PARTITIONS=3 in the tests
    producer = AIOKafkaProducer(bootstrap_servers=boot)
    await producer.start()
    produced: dict[int, int] = {}
    try:
        for i in range(30):
            meta = await producer.send_and_wait(topic, b"x", key=f"k{i}".encode())
            produced[meta.partition] = produced.get(meta.partition, 0) + 1
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=boot, group_id=group, enable_auto_commit=False,
                                auto_offset_reset="earliest", session_timeout_ms=2000,
                                heartbeat_interval_ms=500)  # fmt: skip
    await consumer.start()
    try:
        while len(consumer.assignment()) < 3 or any(consumer.highwater(tp) is None for tp in consumer.assignment()):
            await consumer.getmany(timeout_ms=300, max_records=1)
        handled = {p: min(2, n) for p, n in produced.items()}  # the group "handled" two per partition
        await consumer.commit({TopicPartition(topic, p): n for p, n in handled.items()})
        running = [(group, consumer)]
        updater = GaugeUpdater(pool, "lag-test", lambda: running)

        await updater.update()

        for p, n in produced.items():
            assert _lag(group, topic, p) == n - handled[p]
        await consumer.commit({TopicPartition(topic, p): n for p, n in produced.items()})
        await updater.update()
        assert all(_lag(group, topic, p) == 0 for p in produced)
        # partitions this instance no longer consumes are not reported (another instance does)
        running.clear()
        await updater.update()
        assert all(_lag(group, topic, p) is None for p in produced)
    finally:
        await consumer.stop()


async def test_the_outbox_backlog_and_its_oldest_age_are_what_waits_in_the_outbox(pool: asyncpg.Pool) -> None:
    relay = f"relay-{uuid.uuid4().hex[:6]}"
    now = datetime.now(UTC)
    events = [new_event(SlaWarning(case_id=f"c{i}", sla_deadline=now, at=now), source="t", time=now, subject="c")
              for i in range(7)]  # fmt: skip
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(conn, relay, [outbox_message(e, "t") for e in events])
    await pool.execute("UPDATE outbox SET created_at = now() - interval '90 seconds' WHERE relay = $1", relay)
    updater = GaugeUpdater(pool, relay, list)

    await updater.update()

    assert REGISTRY.get_sample_value("outbox_backlog", {"relay": relay}) == 7
    age = REGISTRY.get_sample_value("outbox_oldest_age_seconds", {"relay": relay})
    assert age is not None
    assert 89 < age < 150
    await pool.execute("DELETE FROM outbox WHERE relay = $1", relay)
    await updater.update()
    assert REGISTRY.get_sample_value("outbox_backlog", {"relay": relay}) == 0
    assert REGISTRY.get_sample_value("outbox_oldest_age_seconds", {"relay": relay}) == 0
