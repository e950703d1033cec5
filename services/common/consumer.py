"""Access to the Kafka consumer behind a subscriber: the batch subscriber's options, the
message (a batch) in hand and its records, reads past the subscriber (a top-up, the
pipeline's next batch) and seeking back to read records again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage
from faststream.middlewares import AckPolicy

from services.common.records import InboundRecord
from services.common.settings import CommonSettings

if TYPE_CHECKING:
    from services.common.offsets import OffsetCommitter


async def _raw(_message: Any) -> None:
    # No decoding here: the application reads the raw records, decodes them and dead-letters
    # what it cannot accept (a decoder error here would redeliver a poison message forever).
    # A coroutine: FastDepends runs a plain function in a worker thread, a hop per batch.
    return None


def batch_subscriber_options(settings: CommonSettings, group_id: str, max_records: int) -> dict[str, Any]:
    """Batches, acknowledged only after the handler's transaction committed (never the
    at-most-once ACK_FIRST default), read from the earliest offset for a new group."""
    return {
        "group_id": group_id,
        "batch": True,
        "max_records": max_records,
        "ack_policy": AckPolicy.NACK_ON_ERROR,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": settings.kafka_session_timeout_ms,
        "heartbeat_interval_ms": settings.kafka_heartbeat_interval_ms,
        "max_partition_fetch_bytes": settings.kafka_max_request_size,
        "decoder": _raw,
        # Range first: partition i of every topic to the same instance, so a customer's
        # charges and complaints (both keyed by customer id) meet in one process. Round
        # robin stays listed so a rolling upgrade can form a group with older instances.
        "partition_assignment_strategy": (RangePartitionAssignor, RoundRobinPartitionAssignor),
        "fetch_max_wait_ms": settings.kafka_fetch_max_wait_ms,
    }


def inbound(r: Any) -> InboundRecord:
    return InboundRecord(r.topic, r.partition, r.offset, r.key, r.value)


def message_in_hand(broker: KafkaBroker) -> KafkaMessage:
    """The message (a batch) that ``broker``'s subscriber is handling, from its context.

    Handlers call this rather than take a ``message: KafkaMessage`` parameter: FastStream
    resolves that parameter through a synchronous context field, which FastDepends runs in a
    worker thread, a thread hop per batch (about 4 % of the recovery service's CPU at 500
    complaints/s, measured) and a wait for that thread on a busy machine.
    """
    message = broker.context.get_local("message")
    if not isinstance(message, KafkaMessage):
        raise RuntimeError("no Kafka message in hand: call this from a subscriber's handler")
    return message


def records_of(message: KafkaMessage) -> list[InboundRecord]:
    raw = message.raw_message
    return [inbound(r) for r in (raw if isinstance(raw, tuple) else (raw,))]


def consumer_of(message: KafkaMessage) -> AIOKafkaConsumer | None:
    """The aiokafka consumer behind ``message`` (None under a test broker's stand-in)."""
    consumer = getattr(message, "consumer", None)
    return consumer if isinstance(consumer, AIOKafkaConsumer) else None


async def top_up(message: KafkaMessage, room: int, wait_ms: int) -> list[InboundRecord]:
    """Records that reached the broker while the previous batch was being handled.

    The consumer fetches a partition again only once its buffered records are handed out,
    so what arrived during a batch would otherwise wait for the batch after next: a second
    look, up to ``wait_ms``, takes them into this one (about one batch less of latency).
    """
    if room <= 0 or wait_ms <= 0:
        return []
    consumer = consumer_of(message)
    if consumer is None:
        return []
    return await take(consumer, wait_ms, room)


async def take(consumer: AIOKafkaConsumer, timeout_ms: int, max_records: int) -> list[InboundRecord]:
    """Up to ``max_records`` records from the consumer, waiting up to ``timeout_ms`` for them
    (0: only those fetched already), read past the subscriber (a top-up, the pipeline)."""
    fetched = await consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
    return [inbound(r) for rs in fetched.values() for r in rs]


def rewind(message: KafkaMessage, records: list[InboundRecord]) -> None:
    """Seek back to the earliest of ``records`` per partition, to handle them again."""
    consumer = consumer_of(message)
    if consumer is None:
        return
    earliest: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        if r.offset is not None and (tp not in earliest or r.offset < earliest[tp]):
            earliest[tp] = r.offset
    assigned = consumer.assignment()
    for tp, offset in earliest.items():
        if tp in assigned:  # a partition taken away meanwhile: its new owner reads it again
            consumer.seek(tp, offset)


class SubscriberConsumer:
    """The pipeline's consumer (:class:`services.common.pipeline.BatchConsumer`) over the
    message a subscriber is handling: reads past it and rewinds through its aiokafka
    consumer (none under a test broker's stand-in: nothing more is read, nothing rewound),
    and hands settled batches' offsets to ``committer``."""

    def __init__(self, message: KafkaMessage, committer: OffsetCommitter) -> None:
        self._message = message
        self._committer = committer

    async def fetched(self, max_records: int) -> list[InboundRecord]:
        consumer = consumer_of(self._message)
        return [] if consumer is None else await take(consumer, 0, max_records)

    def rewind(self, records: list[InboundRecord]) -> None:
        rewind(self._message, records)

    async def commit(self, records: list[InboundRecord]) -> None:
        await self._committer.after_batch(self._message, records)
