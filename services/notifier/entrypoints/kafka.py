"""The notifier service's process: the Kafka subscriber (batches), the outbox relay and the
HTTP probes, wired in one place."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from importlib.metadata import version
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from faststream import FastStream
from faststream.kafka import KafkaMessage
from faststream.middlewares import AckPolicy
from faststream.specification import AsyncAPI

from services.common.clock import Clock, system_clock
from services.common.contract.events import (
    CaseEscalated,
    DeadLettered,
    DecisionMade,
    EmailDelivered,
    EmailFailed,
    EmailRequested,
)
from services.common.db import create_pool
from services.common.http import probes_app, serve
from services.common.kafka import make_broker, make_producer
from services.common.logging import configure_logging, get_logger
from services.common.migrate import migrate
from services.common.records import InboundRecord
from services.common.relay import OutboxRelay
from services.notifier.application import RELAY, NotifierService
from services.notifier.domain.templates import load_templates
from services.notifier.settings import NotifierSettings

log = get_logger(__name__)
NAME = "notifier-service"


def _raw(_message: Any) -> None:
    # No decoding here: the application reads the raw records and dead-letters bad ones.
    return None


def records_of(message: KafkaMessage) -> list[InboundRecord]:
    raw = message.raw_message
    return [
        InboundRecord(r.topic, r.partition, r.offset, r.key, r.value)
        for r in (raw if isinstance(raw, tuple) else (raw,))
    ]


class Runtime:
    """Resources opened at start-up and closed at shutdown."""

    def __init__(self, settings: NotifierSettings, clock: Clock = system_clock) -> None:
        self.settings = settings
        self.clock = clock
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.pool: asyncpg.Pool | None = None
        self.service: NotifierService | None = None
        self.relay: OutboxRelay | None = None
        self.producer: AIOKafkaProducer | None = None
        self.consuming = False

    async def start(self) -> None:
        s = self.settings
        templates = load_templates(s.notifier_templates_dir)
        self.pool = await create_pool(s)
        async with self.pool.acquire() as conn:
            await migrate(conn)
        self.service = NotifierService(self.pool, s, templates, self.clock)
        self.producer = make_producer(s)
        await self.producer.start()
        self.relay = OutboxRelay(self.pool, self.producer, RELAY, batch_size=s.relay_batch_size, poll_s=s.relay_poll_s)
        probes = probes_app(self.ready, NAME, version("service-recovery"))
        self.tasks = [
            asyncio.create_task(self.relay.run(self.stop)),
            asyncio.create_task(serve(probes, s.http_host, s.http_port, self.stop)),
        ]
        log.info("notifier.started")

    async def ready(self) -> bool:
        if self.pool is None:
            return False
        await self.pool.fetchval("SELECT 1")
        return self.consuming

    async def close(self) -> None:
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


def build_app(settings: NotifierSettings, clock: Clock = system_clock) -> FastStream:
    """The FastStream app: its subscriber and described publishers make the AsyncAPI doc."""
    broker = make_broker(settings, log_level=logging.DEBUG)
    runtime = Runtime(settings, clock)

    @broker.subscriber(
        settings.topic_decisions,
        settings.topic_notifications,
        group_id=settings.notifier_group_id,
        batch=True,
        max_records=settings.notifier_batch_max,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        max_partition_fetch_bytes=settings.kafka_max_request_size,
        decoder=_raw,
        title="notifier-service: decisions and delivery outcomes",
        description=(
            f"Accepts {DecisionMade.TYPE} and {CaseEscalated.TYPE} (one email request each), "
            f"{EmailDelivered.TYPE} and {EmailFailed.TYPE} (the request's status)."
        ),
    )
    async def on_batch(body: Any, message: KafkaMessage) -> None:
        records = records_of(message)
        try:
            assert runtime.service is not None
            await runtime.service.handle_records(records)
        except Exception:
            log.exception("batch.failed", records=len(records))
            await asyncio.sleep(1)  # back off; the batch is redelivered (NACK_ON_ERROR)
            raise

    for topic, models, what in (
        (settings.topic_notifications, (EmailRequested,),
         "One email request per decision or escalation (published by the outbox relay)."),
        (settings.topic_dlq, (DeadLettered,),
         "Messages that could not be accepted, with the reason."),
    ):  # fmt: skip
        types = ", ".join(m.TYPE for m in models)
        broker.publisher(topic, title=topic, description=f"{what} Types: {types}")

    app = FastStream(
        broker,
        specification=AsyncAPI(title="notifier-service", version=version("service-recovery")),
    )

    @app.on_startup
    async def _start() -> None:
        await runtime.start()

    @app.after_startup
    async def _consuming() -> None:
        runtime.consuming = True

    @app.after_shutdown
    async def _stop() -> None:
        await runtime.close()

    app.runtime = runtime  # type: ignore[attr-defined]
    return app


def run() -> None:
    settings = NotifierSettings()
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(build_app(settings).run())
