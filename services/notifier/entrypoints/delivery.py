"""`delivery-worker`: the reference delivery worker. Sends each requested email over SMTP
with retries and publishes the outcome (delivered or failed) to the notifications topic.

Per batch of Kafka records: the requests not yet delivered (the ``deliveries`` table in
PostgreSQL, by notification id) are sent concurrently, one asyncio task each, so one slow
email does not hold the others; then, in one transaction, the outcomes are recorded and
queued in the outbox (relay ``delivery``). Only then is the batch's offset committed, so a
crash before that sends the batch's emails again (at-least-once) but never records two
outcomes; a redelivered request already recorded is not sent again.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence
from datetime import datetime
from importlib.metadata import version
from typing import Any

import asyncpg
from faststream import FastStream
from faststream.kafka import KafkaMessage
from faststream.specification import AsyncAPI

from services.common.clock import Clock, system_clock
from services.common.contract import CloudEvent, Event, EventData
from services.common.contract.events import (
    EmailDelivered,
    EmailFailed,
    EmailRequested,
)
from services.common.kafka import decode_batch, make_broker
from services.common.logging import configure_logging, get_logger
from services.common.outbox import enqueue, outbox_message
from services.common.records import InboundRecord, derived_event_id, envelope
from services.common.runtime import ServiceRuntime, attach, batch_subscriber_options, records_of
from services.notifier.adapters.smtp import SmtpSender
from services.notifier.delivery import deliver, schedule
from services.notifier.domain.ports import EmailSender
from services.notifier.settings import NotifierSettings

log = get_logger(__name__)

RELAY = "delivery"
NAME = "delivery-worker"
ACCEPTED = frozenset({EmailRequested.TYPE, EmailDelivered.TYPE, EmailFailed.TYPE})


class CountingSender:
    """Counts the attempts made through ``sender`` (for the ``deliveries`` record)."""

    def __init__(self, sender: EmailSender) -> None:
        self._sender = sender
        self.attempts = 0

    async def send(self, req: EmailRequested, from_address: str) -> None:
        self.attempts += 1
        await self._sender.send(req, from_address)


class DeliveryWorker:
    def __init__(self, pool: asyncpg.Pool, settings: NotifierSettings, sender: EmailSender, clock: Clock) -> None:
        self.pool = pool
        self.settings = settings
        self.sender = sender
        self.clock = clock
        self.source = settings.delivery_source

    async def handle_records(self, records: Sequence[InboundRecord]) -> int:
        """Deliver the batch's new requests and record their outcomes; return how many."""
        requests: dict[str, Event[EventData]] = {}
        decoded, dead = decode_batch(records, ACCEPTED, source=self.source, now=self.clock())
        for event in decoded:
            if isinstance(event.data, EmailRequested):
                requests.setdefault(event.data.notification_id, event)
        done: set[str] = set()
        if requests:
            rows = await self.pool.fetch(
                "SELECT notification_id FROM deliveries WHERE notification_id = ANY($1::text[])",
                list(requests),
            )
            done = {r[0] for r in rows}
        todo = [e for nid, e in requests.items() if nid not in done]
        outcomes = await asyncio.gather(*(self._deliver(e) for e in todo))
        async with self.pool.acquire() as conn, conn.transaction():
            published: list[CloudEvent] = []
            for event, (outcome, attempts) in zip(todo, outcomes, strict=True):
                ev = await self._record(conn, event.envelope, outcome, attempts)
                if ev is not None:
                    published.append(ev)
            topic = self.settings.topic("notifications")
            messages = [outbox_message(ev, topic) for ev in published]
            messages += [outbox_message(d, self.settings.topic("dlq")) for d in dead]
            await enqueue(conn, RELAY, messages)
        return len(published)

    async def _deliver(self, event: Event[EventData]) -> tuple[EmailDelivered | EmailFailed, int]:
        req = event.data
        assert isinstance(req, EmailRequested)
        sender = CountingSender(self.sender)
        outcome = await deliver(sender, req, self.settings.smtp_from, schedule(self.settings),
                                clock=self.clock)  # fmt: skip
        status = "delivered" if isinstance(outcome, EmailDelivered) else "failed"
        log.info("email.outcome", notification_id=req.notification_id,
                 attempts=sender.attempts, status=status)  # fmt: skip
        return outcome, sender.attempts

    async def _record(
        self,
        conn: asyncpg.Connection,
        cause: CloudEvent,
        outcome: EmailDelivered | EmailFailed,
        attempts: int,
    ) -> CloudEvent | None:
        now: datetime = self.clock()
        status, error = ("delivered", None)
        if isinstance(outcome, EmailFailed):
            status, error = ("failed", outcome.error)
        inserted = await conn.fetchval(
            "INSERT INTO deliveries (notification_id, status, attempts, error, updated_at)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING notification_id",
            outcome.notification_id, status, attempts, error, now,
        )  # fmt: skip
        if inserted is None:
            return None  # another worker recorded it first
        stream = f"delivery-{outcome.notification_id}"
        return envelope(outcome, event_id=derived_event_id(outcome.notification_id, stream, 0),
                        source=self.source, time=now, subject=cause.subject,
                        correlation_id=cause.correlationid, causation_id=cause.id)  # fmt: skip


class Runtime(ServiceRuntime):
    """The delivery worker's resources: the worker with its SMTP sender."""

    def __init__(self, settings: NotifierSettings, clock: Clock = system_clock) -> None:
        super().__init__(settings, clock, name=NAME, relay=RELAY,
                         http_host=settings.http_host, http_port=settings.delivery_http_port)  # fmt: skip
        self.notifier_settings = settings
        self.worker: DeliveryWorker | None = None

    async def setup(self) -> None:
        s = self.notifier_settings
        self.worker = DeliveryWorker(self.require_pool(), s, SmtpSender.from_settings(s), self.clock)
        log.info("delivery.started")

    def require_worker(self) -> DeliveryWorker:
        assert self.worker is not None, "the runtime has not started"
        return self.worker


def build_app(settings: NotifierSettings, clock: Clock = system_clock) -> FastStream:
    broker = make_broker(settings, log_level=logging.DEBUG)
    runtime = Runtime(settings, clock)

    @broker.subscriber(  # type: ignore[untyped-decorator]  # options come from one shared dict
        settings.topic_notifications,
        **batch_subscriber_options(settings, settings.delivery_group_id, settings.notifier_batch_max),
        title="delivery-worker: email requests",
        description=f"Sends each {EmailRequested.TYPE} once over SMTP, with retries.",
    )
    async def on_batch(body: Any, message: KafkaMessage) -> None:
        records = records_of(message)
        try:
            await runtime.require_worker().handle_records(records)
        except Exception:
            log.exception("batch.failed", records=len(records))
            await asyncio.sleep(1)  # back off; the batch is redelivered (NACK_ON_ERROR)
            raise

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
            "(DATABASE_URL) and publishes notification.email.delivered.v1 or\n"
            "notification.email.failed.v1 to notifications.email via the outbox.\n"
            "Configuration comes from the environment; see the README."
        )
        return
    settings = NotifierSettings()
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(build_app(settings).run())


if __name__ == "__main__":
    main()
