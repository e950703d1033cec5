"""The recovery service's process: the Kafka subscriber (batches), the outbox relay, the SLA
timer worker and the HTTP probes, wired in one place."""

from __future__ import annotations

import asyncio
import contextlib
import time
from importlib.metadata import version
from typing import Any

import asyncpg
from faststream import FastStream
from faststream.kafka import KafkaMessage
from faststream.middlewares import AckPolicy
from faststream.specification import AsyncAPI

from services.common.clock import Clock, system_clock
from services.common.contract.events import (
    CaseEscalated,
    CaseOpened,
    ChargeFlagged,
    ChargePosted,
    ComplaintFiled,
    DeadLettered,
    DecisionMade,
    SlaBreached,
    SlaWarning,
)
from services.common.db import create_pool
from services.common.http import probes_app, serve
from services.common.kafka import make_broker, make_producer
from services.common.logging import configure_logging, get_logger
from services.common.migrate import migrate
from services.common.outbox import outbox_backlog
from services.common.records import InboundRecord
from services.common.relay import OutboxRelay
from services.recovery import metrics
from services.recovery.application import RELAY, BatchResult, RecoveryService
from services.recovery.domain.policy import load_policy
from services.recovery.domain.roster import load_roster
from services.recovery.entrypoints.ops_api import ops_router
from services.recovery.settings import RecoverySettings

log = get_logger(__name__)


def _raw(_message: Any) -> None:
    # No decoding here: the application reads the raw records, decodes them and dead-letters
    # what it cannot accept (a decoder error here would redeliver a poison message forever).
    return None


class Runtime:
    """Resources opened at start-up and closed at shutdown."""

    def __init__(self, settings: RecoverySettings, clock: Clock = system_clock) -> None:
        self.settings = settings
        self.clock = clock
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.pool: asyncpg.Pool | None = None
        self.service: RecoveryService | None = None
        self.relay: OutboxRelay | None = None
        self.consuming = False

    async def start(self) -> None:
        s = self.settings
        policy = load_policy(s.recovery_policy_file)
        roster = load_roster(s.recovery_roster_file)
        self.pool = await create_pool(s)
        async with self.pool.acquire() as conn:
            await migrate(conn)
        self.service = RecoveryService(self.pool, s, policy, roster, self.clock, s.recovery_source)
        producer = make_producer(s)
        await producer.start()
        self.relay = OutboxRelay(self.pool, producer, RELAY, batch_size=s.relay_batch_size, poll_s=s.relay_poll_s)
        app = probes_app(self.ready, "recovery-service", version("service-recovery"))
        app.include_router(ops_router(self._pool, self._service, s.ops_api_token))
        self.tasks = [
            asyncio.create_task(self.relay.run(self.stop)),
            asyncio.create_task(self._timers()),
            asyncio.create_task(serve(app, s.http_host, s.http_port, self.stop)),
        ]
        self._producer = producer
        log.info("recovery.started", policy=policy.id, policy_version=policy.version)

    def _pool(self) -> asyncpg.Pool:
        assert self.pool is not None
        return self.pool

    def _service(self) -> RecoveryService:
        assert self.service is not None
        return self.service

    async def ready(self) -> bool:
        if self.pool is None:
            return False
        await self.pool.fetchval("SELECT 1")
        return self.consuming

    async def _timers(self) -> None:
        assert self.service is not None
        while not self.stop.is_set():
            try:
                fired = await self.service.fire_due_timers()
                if fired:
                    metrics.TIMERS_FIRED.inc(fired)
                    continue
            except Exception as exc:
                log.warning("timers.failed", error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.settings.recovery_timer_poll_s)

    async def close(self) -> None:
        self.stop.set()
        for t in self.tasks:
            with contextlib.suppress(Exception):
                await t
        if self.relay is not None:
            with contextlib.suppress(Exception):
                await self.relay.drain_once()
        with contextlib.suppress(Exception):
            await self._producer.stop()
        if self.pool is not None:
            await self.pool.close()


def _record_metrics(result: BatchResult, seconds: float) -> None:
    metrics.BATCH_SECONDS.observe(seconds)
    for rule, n in result.rules.items():
        metrics.DECISIONS.labels(rule=rule).inc(n)
    metrics.ESCALATIONS.inc(result.escalations)
    metrics.DEAD_LETTERS.inc(result.dead_letters)
    metrics.DUPLICATES.inc(result.duplicates)
    metrics.FLAGGED.inc(result.flagged)
    metrics.SLA_MET.labels(within_sla="true").inc(result.within_sla)
    metrics.SLA_MET.labels(within_sla="false").inc(result.late)


def build_app(settings: RecoverySettings, clock: Clock = system_clock) -> FastStream:
    """The FastStream app: its subscriber and described publishers make the AsyncAPI doc."""
    import logging

    broker = make_broker(settings, log_level=logging.DEBUG)
    runtime = Runtime(settings, clock)

    @broker.subscriber(
        settings.topic_charges,
        settings.topic_complaints,
        group_id=settings.recovery_group_id,
        batch=True,
        max_records=settings.recovery_batch_max,
        batch_timeout_ms=settings.recovery_batch_timeout_ms,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        max_partition_fetch_bytes=settings.kafka_max_request_size,
        decoder=_raw,
        title="recovery-service: charges and complaints",
        description=f"Accepts {ChargePosted.TYPE}, billing.charge.refunded.v1 and {ComplaintFiled.TYPE}.",
    )
    async def on_batch(body: Any, message: KafkaMessage) -> None:
        raw = message.raw_message
        records = [
            InboundRecord(r.topic, r.partition, r.offset, r.key, r.value)
            for r in (raw if isinstance(raw, tuple) else (raw,))
        ]
        started = time.perf_counter()
        try:
            assert runtime.service is not None
            result = await runtime.service.handle_records(records)
        except Exception:
            log.exception("batch.failed", records=len(records))
            await asyncio.sleep(1)  # back off; the batch is redelivered (NACK_ON_ERROR)
            raise
        _record_metrics(result, time.perf_counter() - started)

    for topic, models, what in (
        (settings.topic_decisions,
         (CaseOpened, DecisionMade, CaseEscalated, SlaWarning, SlaBreached, ChargeFlagged),
         "Every case event and decision, keyed by customer id (published by the outbox relay)."),
        (settings.topic_dlq, (DeadLettered,), "Messages that could not be accepted, with the reason."),
    ):  # fmt: skip
        broker.publisher(topic, title=topic, description=what + " Types: " + ", ".join(m.TYPE for m in models))

    app = FastStream(
        broker,
        specification=AsyncAPI(title="recovery-service", version=version("service-recovery")),
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
    _ = outbox_backlog
    return app


def run() -> None:
    settings = RecoverySettings()
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(build_app(settings).run())
