"""The notifier service's process: the Kafka subscriber (batches), the outbox relay and the
HTTP probes, wired in one place."""

from __future__ import annotations

import asyncio
import logging
from importlib.metadata import version
from typing import Any

from faststream import FastStream
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
from services.common.failures import Backoff, backed_off
from services.common.gc_tuning import paused_for_batch
from services.common.isolate import Quarantine, isolate
from services.common.kafka import make_broker
from services.common.logging import configure_logging, get_logger, secrets_of
from services.common.records import InboundRecord
from services.common.runtime import ServiceRuntime, attach, batch_subscriber_options, message_in_hand, records_of
from services.notifier import metrics
from services.notifier.application import CONSUMER, RELAY, NotifierService
from services.notifier.domain.templates import load_templates
from services.notifier.settings import NotifierSettings

log = get_logger(__name__)
NAME = "notifier-service"


class Runtime(ServiceRuntime):
    """The notifier's resources: its application over the shipped (or operator's) templates."""

    def __init__(self, settings: NotifierSettings, clock: Clock = system_clock) -> None:
        super().__init__(settings, clock, name=NAME, relay=RELAY,
                         http_host=settings.http_host, http_port=settings.http_port)  # fmt: skip
        self.notifier_settings = settings
        self.service: NotifierService | None = None
        self.quarantine: Quarantine | None = None

    async def setup(self) -> None:
        s = self.notifier_settings
        templates = load_templates(s.notifier_templates_dir)
        self.service = NotifierService(self.require_pool(), s, templates, self.clock)
        self.quarantine = Quarantine(self.require_pool(), CONSUMER, RELAY, s.topic_dlq, s.notifier_source, self.clock,
                                     on_dead_lettered=_dead_lettered, **s.quarantine_options())  # fmt: skip
        log.info("notifier.started")

    def require_service(self) -> NotifierService:
        assert self.service is not None, "the runtime has not started"
        return self.service

    async def handle(self, records: list[InboundRecord]) -> None:
        """Handle a batch, isolating a poison message in it (services/common/isolate.py)."""
        assert self.quarantine is not None, "the runtime has not started"
        with paused_for_batch():
            await isolate(records, self.require_service().handle_records, self.quarantine)


def _dead_lettered(record: InboundRecord, exc: BaseException) -> None:
    metrics.POISON_ISOLATED.labels(consumer=NAME).inc()


def build_app(settings: NotifierSettings, clock: Clock = system_clock) -> FastStream:
    """The FastStream app: its subscriber and described publishers make the AsyncAPI doc."""
    broker = make_broker(settings, log_level=logging.DEBUG)
    runtime = Runtime(settings, clock)
    retried = metrics.TRANSIENT_RETRIES.labels(consumer=NAME)
    backoff = Backoff(settings.retry_base_s, settings.retry_max_s, on_retry=lambda _: retried.inc())

    @broker.subscriber(  # type: ignore[untyped-decorator]  # options come from one shared dict
        settings.topic_decisions,
        settings.topic_notifications,
        **batch_subscriber_options(settings, settings.notifier_group_id, settings.notifier_batch_max),
        title="notifier-service: decisions and delivery outcomes",
        description=(
            f"Accepts {DecisionMade.TYPE} and {CaseEscalated.TYPE} (one email request each), "
            f"{EmailDelivered.TYPE} and {EmailFailed.TYPE} (the request's status)."
        ),
    )
    async def on_batch(body: Any) -> None:
        await backed_off(runtime.handle(records_of(message_in_hand(broker))), backoff)

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

    return attach(app, runtime)


def run() -> None:
    settings = NotifierSettings()
    configure_logging(settings.log_level, settings.log_format, secrets=secrets_of(settings))
    asyncio.run(build_app(settings).run())
