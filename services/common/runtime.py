"""What every service process shares: the resources opened at start-up and closed at
shutdown (a migrated pool, the producer and its outbox relay, the HTTP probes), the batch
subscriber's options, and the FastStream lifecycle hooks.

A service subclasses :class:`ServiceRuntime` and fills in only what differs: ``setup`` (its
application object), ``extend_http`` (extra routes) and ``background`` (extra tasks).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from datetime import timedelta
from importlib.metadata import version
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from fastapi import FastAPI
from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage
from faststream.middlewares import AckPolicy

from services.common.clock import Clock
from services.common.db import create_pool
from services.common.gauges import GaugeUpdater
from services.common.gc_tuning import tune_for_throughput
from services.common.http import probes_app, serve
from services.common.kafka import make_producer
from services.common.logging import get_logger
from services.common.migrate import migrate
from services.common.outbox import prune_inbox_every
from services.common.records import InboundRecord
from services.common.relay import OutboxRelay
from services.common.settings import CommonSettings

log = get_logger(__name__)


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


class ServiceRuntime:
    """Resources of one service process, opened in ``start`` and closed in ``close``."""

    gauge_interval_s = 5.0  # how often the lag and outbox gauges are refreshed
    inbox_prune_interval_s = 3600.0  # how often entries past INBOX_RETENTION_HOURS are pruned

    def __init__(
        self, settings: CommonSettings, clock: Clock, *, name: str, relay: str, http_host: str, http_port: int
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.name = name
        self.relay_name = relay
        self.http_host = http_host
        self.http_port = http_port
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.pool: asyncpg.Pool | None = None
        self.producer: AIOKafkaProducer | None = None
        self.relay: OutboxRelay | None = None
        self.consuming = False
        self.subscribers: list[Any] = []  # the app's Kafka subscribers (set by `attach`)

    def consumers(self) -> list[tuple[str, Any]]:
        """(group id, aiokafka consumer) of each running subscriber, for the lag gauge."""
        return [(s.group_id, s.consumer) for s in self.subscribers if getattr(s, "consumer", None) is not None]

    async def setup(self) -> None:
        """Build the service's application object (the pool is open and migrated)."""

    def extend_http(self, app: FastAPI) -> None:
        """Add routes beside the probes."""

    def background(self) -> list[Coroutine[Any, Any, None]]:
        """Extra tasks that run until ``stop`` is set."""
        return []

    def require_pool(self) -> asyncpg.Pool:
        assert self.pool is not None, "the runtime has not started"
        return self.pool

    async def start(self) -> None:
        s = self.settings
        self.pool = await create_pool(s)
        async with self.pool.acquire() as conn:
            await migrate(conn)
        await self.setup()
        tune_for_throughput()
        self.producer = make_producer(s)
        await self.producer.start()
        self.relay = OutboxRelay(
            self.pool,
            self.producer,
            self.relay_name,
            batch_size=s.relay_batch_size,
            poll_s=s.relay_poll_s,
            max_request_size=s.kafka_max_request_size,
        )
        app = probes_app(self.ready, self.name, version("service-recovery"))
        self.extend_http(app)
        self.tasks = [
            asyncio.create_task(self.relay.run(self.stop)),
            asyncio.create_task(serve(app, self.http_host, self.http_port, self.stop)),
            asyncio.create_task(
                GaugeUpdater(self.pool, self.relay_name, self.consumers).run(self.stop, self.gauge_interval_s)
            ),
            *(asyncio.create_task(c) for c in self.background()),
        ]
        if s.inbox_retention_hours:
            retention = timedelta(hours=s.inbox_retention_hours)
            self.tasks.append(
                asyncio.create_task(prune_inbox_every(self.pool, retention, self.inbox_prune_interval_s, self.stop))
            )

    async def ready(self) -> bool:
        if self.pool is None:
            return False
        await self.pool.fetchval("SELECT 1")
        return self.consuming

    async def close(self) -> None:
        """Stop the tasks, publish what the last batch queued, close the clients."""
        self.stop.set()
        for t in self.tasks:
            with contextlib.suppress(Exception):
                await t
        if self.relay is not None:
            with contextlib.suppress(Exception):
                await self.relay.drain_once()
        if self.producer is not None:
            with contextlib.suppress(Exception):
                await self.producer.stop()
        if self.pool is not None:
            await self.pool.close()


def attach(app: FastStream, runtime: ServiceRuntime) -> FastStream:
    """Open the runtime before the subscribers start; close it after they stopped (FastStream
    waits up to its graceful timeout for the batch in hand)."""

    @app.on_startup
    async def _start() -> None:
        await runtime.start()

    @app.after_startup
    async def _consuming() -> None:
        runtime.consuming = True

    @app.after_shutdown
    async def _stop() -> None:
        await runtime.close()

    runtime.subscribers = [s for b in app.brokers for s in b.subscribers]
    app.runtime = runtime  # type: ignore[attr-defined]
    return app
