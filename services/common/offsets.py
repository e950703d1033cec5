"""Committing a consumer's offsets once each batch's transaction committed."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition
from faststream.kafka.message import KafkaMessage

from services.common.consumer import consumer_of
from services.common.logging import get_logger
from services.common.records import InboundRecord

log = get_logger(__name__)


class OffsetCommitter:
    """Commits a consumer's offsets after each batch without holding up the next one.

    A batch's offsets are committed only after its transaction committed; the next batch
    just does not wait for the broker's answer (a round trip per batch). One
    commit is in flight at a time, offsets handed in meanwhile go in the next (the highest
    per partition), and partitions no longer assigned are left out. A commit that fails or
    never happens redelivers messages whose ids the inbox already holds, as a crash between
    a transaction and its commit always could. From :meth:`finish` (the app is stopping)
    each commit is awaited, so a clean stop leaves nothing to redeliver.
    """

    def __init__(self) -> None:
        self._pending: dict[TopicPartition, int] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._inline = False

    async def after_batch(self, message: KafkaMessage, records: list[InboundRecord]) -> None:
        consumer = consumer_of(message)
        if consumer is None:
            await message.ack()  # not aiokafka's consumer (a test broker): its own ack
            return
        self._consumer = consumer
        for r in records:
            if r.offset is not None and r.partition is not None:
                tp = TopicPartition(r.topic, r.partition)
                self._pending[tp] = max(self._pending.get(tp, 0), r.offset + 1)
        if self._inline:
            await self._commit_pending()
        elif self._task is None or self._task.done():
            self._task = asyncio.create_task(self._commit_pending())

    async def _commit_pending(self) -> None:
        while self._pending and self._consumer is not None:
            assigned = self._consumer.assignment()
            offsets = {tp: o for tp, o in self._pending.items() if tp in assigned}
            self._pending = {}
            if not offsets:
                continue
            try:
                await self._consumer.commit(offsets)
            except Exception as exc:  # the inbox makes a lost commit harmless; say so and go on
                log.warning("kafka.commit_failed", error=type(exc).__name__)

    async def finish(self) -> None:
        """Commit what is pending, and from now on commit each batch before it returns."""
        self._inline = True
        if self._task is not None:
            await self._task
        await self._commit_pending()
