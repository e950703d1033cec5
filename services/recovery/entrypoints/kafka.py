"""The recovery service's process: the Kafka subscriber (batches), the outbox relay, the SLA
timer worker and the HTTP probes, wired in one place."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import fields
from importlib.metadata import version
from typing import Any

from fastapi import FastAPI
from faststream import FastStream
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
from services.common.failures import Backoff
from services.common.gc_tuning import paused_for_batch
from services.common.isolate import Quarantine, isolate
from services.common.kafka import make_broker
from services.common.logging import configure_logging, get_logger, secrets_of
from services.common.pacing import Pacer
from services.common.pipeline import BatchPipeline, InFlight
from services.common.records import InboundRecord
from services.common.runtime import (
    OffsetCommitter,
    ServiceRuntime,
    attach,
    batch_subscriber_options,
    message_in_hand,
    records_of,
    top_up,
)
from services.recovery import metrics
from services.recovery.application import CONSUMER, RELAY, BatchResult, RecoveryService
from services.recovery.domain.policy import load_policy
from services.recovery.domain.roster import load_roster
from services.recovery.entrypoints.ops_api import ops_router
from services.recovery.settings import RecoverySettings

log = get_logger(__name__)


class Runtime(ServiceRuntime):
    """The recovery service's resources: its application, the ops API and the SLA timers."""

    def __init__(self, settings: RecoverySettings, clock: Clock = system_clock) -> None:
        super().__init__(settings, clock, name="recovery-service", relay=RELAY,
                         http_host=settings.http_host, http_port=settings.http_port)  # fmt: skip
        self.recovery_settings = settings
        self.service: RecoveryService | None = None
        self.quarantine: Quarantine | None = None

    async def setup(self) -> None:
        s = self.recovery_settings
        policy = load_policy(s.recovery_policy_file)
        roster = load_roster(s.recovery_roster_file)
        self.service = RecoveryService(self.require_pool(), s, policy, roster, self.clock, s.recovery_source,
                                       pace=Pacer())  # fmt: skip
        self.quarantine = Quarantine(self.require_pool(), CONSUMER, RELAY, s.topic_dlq, s.recovery_source, self.clock,
                                     on_dead_lettered=_dead_lettered, **s.quarantine_options())  # fmt: skip
        log.info("recovery.started", policy=policy.id, policy_version=policy.version)

    def require_service(self) -> RecoveryService:
        assert self.service is not None, "the runtime has not started"
        return self.service

    async def handle(self, records: list[InboundRecord], flight: InFlight, before: InFlight | None) -> BatchResult:
        """Handle a batch, isolating a poison message in it (services/common/isolate.py).

        A part of a batch handled again alone does not stand for the batch in the pipeline:
        the batch behind waits on the whole batch's keys (``flight``), which it keeps until
        every part is over. The part still looks at the batch ahead (``before``), over by
        then unless it shares no customer with this one.
        """
        service = self.require_service()
        assert self.quarantine is not None, "the runtime has not started"

        async def handle(part: list[InboundRecord]) -> BatchResult:
            return await service.handle_records(part, (flight if part is records else InFlight()).after(before))

        with paused_for_batch():
            results = await isolate(records, handle, self.quarantine)
        return results[0] if len(results) == 1 else _merged(results)

    def extend_http(self, app: FastAPI) -> None:
        app.include_router(ops_router(self.require_pool, self.require_service, self.recovery_settings.ops_api_token))

    def background(self) -> list[Coroutine[Any, Any, None]]:
        return [self._timers()]

    async def _timers(self) -> None:
        service = self.require_service()
        while not self.stop.is_set():
            try:
                fired = await service.fire_due_timers()
                if fired:
                    metrics.TIMERS_FIRED.inc(fired)
                    continue
            except Exception as exc:  # RetriesExhausted among them: tried again at the next tick
                log.warning("timers.failed", error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.recovery_settings.recovery_timer_poll_s)


def _dead_lettered(record: InboundRecord, exc: BaseException) -> None:
    metrics.POISON_ISOLATED.inc()
    metrics.DEAD_LETTERS.inc()


def _merged(results: list[BatchResult]) -> BatchResult:
    """One result for the parts of a batch handled apart."""
    total = BatchResult()
    for r in results:
        for f in fields(BatchResult):
            if f.name != "rules":
                setattr(total, f.name, getattr(total, f.name) + getattr(r, f.name))
        for rule, n in r.rules.items():
            total.rules[rule] = total.rules.get(rule, 0) + n
    return total


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
    broker = make_broker(settings, log_level=logging.DEBUG)
    runtime = Runtime(settings, clock)
    committer = OffsetCommitter()

    backoff = Backoff(settings.retry_base_s, settings.retry_max_s, on_retry=lambda _: metrics.TRANSIENT_RETRIES.inc())
    pipeline = BatchPipeline(runtime.handle, committer, _record_metrics, settings.recovery_batch_max,
                             overlap=settings.recovery_pipeline, backoff=backoff)  # fmt: skip
    options = batch_subscriber_options(settings, settings.recovery_group_id, settings.recovery_batch_max)
    # The handler acknowledges itself (BatchPipeline): it rewinds a failed batch and commits
    # a handled one's offsets without waiting for the broker's answer (OffsetCommitter).
    options["ack_policy"] = AckPolicy.MANUAL

    @broker.subscriber(  # type: ignore[untyped-decorator]  # options come from one shared dict
        settings.topic_charges,
        settings.topic_complaints,
        **options,
        batch_timeout_ms=settings.recovery_batch_timeout_ms,
        title="recovery-service: charges and complaints",
        description=f"Accepts {ChargePosted.TYPE}, billing.charge.refunded.v1 and {ComplaintFiled.TYPE}.",
    )
    async def on_batch(body: Any) -> None:
        message = message_in_hand(broker)
        records = records_of(message)
        records += await top_up(message, settings.recovery_batch_max - len(records), settings.recovery_top_up_ms)
        await pipeline.run(message, records)

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
    # Before the subscriber stops: a clean stop settles the batches in hand and commits all.
    app.on_shutdown(pipeline.stop)
    app.on_shutdown(committer.finish)
    return attach(app, runtime)


def run() -> None:
    settings = RecoverySettings()
    configure_logging(settings.log_level, settings.log_format, secrets=secrets_of(settings))
    asyncio.run(build_app(settings).run())
