"""The notifier service's Kafka entrypoint: the subscriber (batches) and the described
publishers, on the runtime that :mod:`services.notifier.bootstrap` builds."""

from __future__ import annotations

import asyncio
import logging
from importlib.metadata import version
from typing import Any

from faststream import FastStream
from faststream.specification import AsyncAPI

from services.common.clock import Clock, system_clock
from services.common.consumer import batch_subscriber_options, message_in_hand, records_of
from services.common.contract.events import (
    CaseEscalated,
    DeadLettered,
    DecisionMade,
    EmailDelivered,
    EmailFailed,
    EmailRequested,
)
from services.common.failures import Backoff, backed_off
from services.common.hooks import attach
from services.common.kafka import make_broker
from services.common.logging import configure_logging, get_logger, secrets_of
from services.common.settings import load_settings
from services.common.tracing import configure_tracing
from services.notifier import metrics
from services.notifier.bootstrap import NOTIFIER, NotifierRuntime
from services.notifier.settings import NotifierSettings

log = get_logger(__name__)


def build_app(settings: NotifierSettings, clock: Clock = system_clock) -> FastStream:
    """The FastStream app: its subscriber and described publishers make the AsyncAPI doc."""
    broker = make_broker(settings, log_level=logging.DEBUG)
    runtime = NotifierRuntime(settings, clock)
    retried = metrics.TRANSIENT_RETRIES.labels(consumer=NOTIFIER)
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
    settings = load_settings(NotifierSettings)
    configure_logging(settings.log_level, settings.log_format, secrets=secrets_of(settings))
    configure_tracing("notifier-service")
    asyncio.run(build_app(settings).run())
