"""`delivery-worker`: the reference delivery worker's Kafka entrypoint, on the runtime that
:mod:`services.notifier.bootstrap` builds (the worker itself is
:mod:`services.notifier.worker`). Sends each requested email over SMTP with retries and
publishes the outcome (delivered or failed) to the notifications topic.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from importlib.metadata import version
from typing import Any

from faststream import FastStream
from faststream.specification import AsyncAPI

from services.common.clock import Clock, system_clock
from services.common.consumer import batch_subscriber_options, message_in_hand, records_of
from services.common.contract.events import (
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
from services.notifier.bootstrap import DELIVERY, DeliveryRuntime
from services.notifier.settings import NotifierSettings

log = get_logger(__name__)


def build_app(settings: NotifierSettings, clock: Clock = system_clock) -> FastStream:
    broker = make_broker(settings, log_level=logging.DEBUG)
    runtime = DeliveryRuntime(settings, clock)
    retried = metrics.TRANSIENT_RETRIES.labels(consumer=DELIVERY)
    backoff = Backoff(settings.retry_base_s, settings.retry_max_s, on_retry=lambda _: retried.inc())

    @broker.subscriber(  # type: ignore[untyped-decorator]  # options come from one shared dict
        settings.topic_notifications,
        **batch_subscriber_options(settings, settings.delivery_group_id, settings.notifier_batch_max),
        title="delivery-worker: email requests",
        description=f"Sends each {EmailRequested.TYPE} once over SMTP, with retries.",
    )
    async def on_batch(body: Any) -> None:
        await backed_off(runtime.handle(records_of(message_in_hand(broker))), backoff)

    broker.publisher(
        settings.topic_notifications, title=settings.topic_notifications,
        description=f"Delivery outcomes. Types: {EmailDelivered.TYPE}, {EmailFailed.TYPE}",
    )  # fmt: skip

    app = FastStream(broker, specification=AsyncAPI(title="delivery-worker", version=version("service-recovery")))

    return attach(app, runtime)


def main() -> None:
    if any(a in ("-h", "--help") for a in sys.argv[1:]):
        print(
            "usage: delivery-worker\n\n"
            "Consumes notifications.email, sends each requested email once over SMTP\n"
            "(SMTP_HOST, SMTP_PORT, ...) with retries (DELIVERY_MAX_ATTEMPTS,\n"
            "DELIVERY_BASE_DELAY_S, DELIVERY_MAX_DELAY_S), records it in PostgreSQL\n"
            "(DATABASE_URL, claimed first: DELIVERY_CLAIM_LEASE_S) and publishes notification.email.delivered.v1 or\n"
            "notification.email.failed.v1 to notifications.email via the outbox.\n"
            'Configuration comes from the environment; see docs/operations.md, "Configuration".'
        )
        return
    settings = load_settings(NotifierSettings)
    configure_logging(settings.log_level, settings.log_format, secrets=secrets_of(settings))
    configure_tracing("delivery-worker")
    asyncio.run(build_app(settings).run())


if __name__ == "__main__":
    main()
