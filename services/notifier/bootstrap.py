"""The notifier's composition root: what the notifier service and the delivery worker run
on, built from the settings in one place. Their Kafka entrypoints
(:mod:`.entrypoints.kafka`, :mod:`.entrypoints.delivery`) take the runtimes built here.

- :func:`notifier_service` and :func:`delivery_worker` are the one place each application
  is made (the templates and the SMTP sender loaded from the settings).
- :class:`NotifierRuntime` and :class:`DeliveryRuntime` are the processes: the pool,
  producer, relay and probes of :class:`ServiceRuntime`, the application and its poison
  quarantine; the delivery worker's also prunes its finished delivery rows (:mod:`.retention`).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg

from services.common.clock import Clock, system_clock
from services.common.gc_tuning import paused_for_batch
from services.common.isolate import Quarantine, isolate
from services.common.logging import get_logger
from services.common.records import InboundRecord
from services.common.runtime import ServiceRuntime
from services.notifier import metrics, retention
from services.notifier.adapters.smtp import SmtpSender
from services.notifier.application import CONSUMER, RELAY, NotifierService
from services.notifier.domain.templates import load_templates
from services.notifier.settings import NotifierSettings
from services.notifier.worker import RELAY as DELIVERY_RELAY
from services.notifier.worker import DeliveryWorker

log = get_logger(__name__)

NOTIFIER = "notifier-service"
DELIVERY = "delivery-worker"


def notifier_service(pool: asyncpg.Pool, settings: NotifierSettings, clock: Clock) -> NotifierService:
    """The notifier application over the shipped (or the operator's) templates."""
    return NotifierService(pool, settings, load_templates(settings.notifier_templates_dir), clock)


def delivery_worker(pool: asyncpg.Pool, settings: NotifierSettings, clock: Clock) -> DeliveryWorker:
    """The delivery worker with its SMTP sender."""
    return DeliveryWorker(pool, settings, SmtpSender.from_settings(settings), clock)


class NotifierRuntime(ServiceRuntime):
    """The notifier's process: its application and the quarantine of its poison messages."""

    def __init__(self, settings: NotifierSettings, clock: Clock = system_clock) -> None:
        super().__init__(settings, clock, name=NOTIFIER, relay=RELAY, namespace="notifier",
                         http_host=settings.http_host, http_port=settings.http_port)  # fmt: skip
        self.notifier_settings = settings
        self.service: NotifierService | None = None
        self.quarantine: Quarantine | None = None

    async def setup(self) -> None:
        s = self.notifier_settings
        self.service = notifier_service(self.require_pool(), s, self.clock)
        self.quarantine = Quarantine(self.require_pool(), CONSUMER, RELAY, s.topic_dlq, s.notifier_source, self.clock,
                                     on_dead_lettered=_dead_lettered(NOTIFIER), **s.quarantine_options())  # fmt: skip
        log.info("notifier.started")

    def require_service(self) -> NotifierService:
        assert self.service is not None, "the runtime has not started"
        return self.service

    async def handle(self, records: list[InboundRecord]) -> None:
        """Handle a batch, isolating a poison message in it (services/common/isolate.py)."""
        assert self.quarantine is not None, "the runtime has not started"
        with paused_for_batch():
            await isolate(records, self.require_service().handle_records, self.quarantine)


class DeliveryRuntime(ServiceRuntime):
    """The delivery worker's process: the worker with its SMTP sender, and the retention of
    its delivery rows."""

    retention_interval_s = 3600.0  # how often rows past NOTIFICATION_RETENTION_DAYS are pruned

    def __init__(self, settings: NotifierSettings, clock: Clock = system_clock) -> None:
        super().__init__(settings, clock, name=DELIVERY, relay=DELIVERY_RELAY, namespace="delivery",
                         http_host=settings.http_host, http_port=settings.delivery_http_port)  # fmt: skip
        self.notifier_settings = settings
        self.worker: DeliveryWorker | None = None
        self.quarantine: Quarantine | None = None

    async def setup(self) -> None:
        s = self.notifier_settings
        self.worker = delivery_worker(self.require_pool(), s, self.clock)
        self.quarantine = Quarantine(self.require_pool(), DELIVERY, DELIVERY_RELAY, s.topic_dlq, s.delivery_source,
                                     self.clock, on_dead_lettered=_dead_lettered(DELIVERY),
                                     **s.quarantine_options())  # fmt: skip
        log.info("delivery.started")

    def require_worker(self) -> DeliveryWorker:
        assert self.worker is not None, "the runtime has not started"
        return self.worker

    async def handle(self, records: list[InboundRecord]) -> None:
        """Claim a batch, isolating a poison message in it (services/common/isolate.py)."""
        assert self.quarantine is not None, "the runtime has not started"
        await isolate(records, self.require_worker().handle_records, self.quarantine)

    def background(self) -> list[Coroutine[Any, Any, None]]:
        return [self.require_worker().run(self.stop), *self.retention()]

    def retention(self) -> list[Coroutine[Any, Any, None]]:
        """The pruning of delivery rows past their retention (none when it is 0)."""
        days = self.notifier_settings.notification_retention_days
        if not days:
            return []
        return [retention.prune_every(self.require_pool(), days, self.clock, self.retention_interval_s, self.stop)]

    async def close(self) -> None:
        """Release the claims in flight (the subscriber has stopped), then close as usual."""
        if self.worker is not None:
            try:
                await self.worker.shutdown(grace_s=self.notifier_settings.smtp_timeout_s)
            except Exception as exc:
                log.warning("delivery.shutdown_failed", error=type(exc).__name__)
        await super().close()


def _dead_lettered(consumer: str) -> Callable[[InboundRecord, BaseException], None]:
    """Counts each poison message ``consumer`` puts aside."""
    isolated = metrics.POISON_ISOLATED.labels(consumer=consumer)

    def count(record: InboundRecord, exc: BaseException) -> None:
        isolated.inc()

    return count
