"""Topping a batch up with what reached the broker while the last one was handled, and
rewinding that top-up when the batch fails (real broker)."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any, cast

from aiokafka import AIOKafkaConsumer, TopicPartition
from faststream.kafka.message import KafkaMessage

from services.common.consumer import rewind, top_up
from services.common.records import InboundRecord
from services.common.settings import CommonSettings
from tests.helpers import produce


async def _values(consumer: AIOKafkaConsumer, want: int, message: Any) -> list[InboundRecord]:
    got: list[InboundRecord] = []
    deadline = time.monotonic() + 30
    while len(got) < want and time.monotonic() < deadline:
        got += await top_up(message, want - len(got), 500)
    return got


def _value(record: InboundRecord) -> bytes:
    assert record.value is not None
    return record.value


def _offset(record: InboundRecord) -> int:
    assert record.offset is not None
    return record.offset


async def test_a_top_up_takes_what_arrived_since_and_a_failed_batch_rewinds_it(common_settings: CommonSettings) -> None:
    s = common_settings
    topic = s.topic_complaints
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=s.kafka_bootstrap_servers, group_id=f"topup-{topic}",
        enable_auto_commit=False, auto_offset_reset="earliest",
        session_timeout_ms=s.kafka_session_timeout_ms, heartbeat_interval_ms=s.kafka_heartbeat_interval_ms,
    )  # fmt: skip
    await consumer.start()
    message = cast(KafkaMessage, SimpleNamespace(consumer=consumer))  # what the subscriber hands the handler
    try:
        await produce(s.kafka_bootstrap_servers, topic, [(f"c{i}", f"first-{i}".encode()) for i in range(9)])
        first = await _values(consumer, 9, message)  # the subscriber's batch
        assert sorted(_value(r) for r in first) == sorted(f"first-{i}".encode() for i in range(9))

        # What arrives while that batch is handled is taken into it by the top-up.
        await produce(s.kafka_bootstrap_servers, topic, [(f"c{i}", f"later-{i}".encode()) for i in range(9)])
        later = await _values(consumer, 9, message)
        assert sorted(_value(r) for r in later) == sorted(f"later-{i}".encode() for i in range(9))
        assert await top_up(message, 0, 500) == []  # a full batch takes nothing more
        assert await top_up(message, 10, 0) == []  # switched off

        # The batch fails: the top-up is rewound (the subscriber rewinds its own part), so
        # the same records come again and none is committed past.
        rewind(message, later)
        for tp in {TopicPartition(r.topic, r.partition) for r in later}:
            assert await consumer.position(tp) == min(_offset(r) for r in later if r.partition == tp.partition)
        again = await _values(consumer, 9, message)
        assert sorted((r.partition, r.offset) for r in again) == sorted((r.partition, r.offset) for r in later)
    finally:
        await consumer.stop()
