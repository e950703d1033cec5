"""The recovery service's Kafka entrypoint: the subscriber (batches, topped up and run
through the runtime's pipeline) and the described publishers, on the runtime that
:mod:`services.recovery.bootstrap` builds."""

from __future__ import annotations

import asyncio
import logging
from importlib.metadata import version
from typing import Any

from faststream import FastStream
from faststream.middlewares import AckPolicy
from faststream.specification import AsyncAPI

from services.common.clock import Clock, FileClock, system_clock
from services.common.consumer import SubscriberConsumer, batch_subscriber_options, message_in_hand, records_of, top_up
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
from services.common.hooks import attach
from services.common.kafka import make_broker
from services.common.logging import configure_logging, get_logger, secrets_of
from services.common.settings import load_settings
from services.common.tracing import configure_tracing
from services.recovery.bootstrap import Runtime
from services.recovery.settings import RecoverySettings

log = get_logger(__name__)


def build_app(settings: RecoverySettings, clock: Clock = system_clock) -> FastStream:
    """The FastStream app: its subscriber and described publishers make the AsyncAPI doc."""
    broker = make_broker(settings, log_level=logging.DEBUG)
    runtime = Runtime(settings, clock)
    pipeline, committer = runtime.pipeline, runtime.committer
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
        await pipeline.run(SubscriberConsumer(message, committer), records)

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
    settings = load_settings(RecoverySettings)
    configure_logging(settings.log_level, settings.log_format, secrets=secrets_of(settings))
    configure_tracing("recovery-service")
    clock = system_clock if settings.recovery_test_clock_file is None else FileClock(settings.recovery_test_clock_file)
    asyncio.run(build_app(settings, clock).run())
