"""The recovery service's composition root: what its processes run on, built from the
settings in one place. The Kafka subscriber (:mod:`.entrypoints.kafka`), the ops API and
``recoveryctl`` take what is built here; none of them builds a service of its own.

- :func:`configure` loads what the settings name (the policy, the roster, the voucher
  codes), failing with :class:`ConfigError` before anything is opened.
- :func:`recovery_service` is the one place a :class:`RecoveryService` is made.
- :class:`Runtime` is the service process: the pool, producer, relay and probes of
  :class:`ServiceRuntime`, the application and its poison quarantine, the ops API and the
  escalation desk, the SLA timers, and the batch pipeline with its offset committer.
- :func:`connected` and :func:`service_for` give the command line a pool, or a service over
  one, for the length of a command.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, fields
from typing import Any

import asyncpg
from fastapi import FastAPI

from services.common.clock import Clock, system_clock
from services.common.db import create_pool
from services.common.failures import Backoff
from services.common.gc_tuning import paused_for_batch
from services.common.http import HttpOptions
from services.common.isolate import Quarantine, isolate
from services.common.logging import get_logger
from services.common.offsets import OffsetCommitter
from services.common.pacing import Pace, Pacer
from services.common.periodic import every
from services.common.pipeline import BatchPipeline, InFlight
from services.common.records import InboundRecord
from services.common.runtime import ServiceRuntime
from services.recovery import metrics
from services.recovery.application import CONSUMER, RELAY, BatchResult, RecoveryService, voucher_key
from services.recovery.calendars import staffed
from services.recovery.desk.web import Desk, mount_desk
from services.recovery.domain.policy import Policy, load_policy
from services.recovery.domain.remedies import VoucherCodes
from services.recovery.domain.roster import Roster, load_roster
from services.recovery.entrypoints.ops_api import ops_router
from services.recovery.identity import Authenticator, Db, OidcConfig, OidcVerifier
from services.recovery.settings import RecoverySettings

log = get_logger(__name__)


@dataclass(frozen=True)
class Configured:
    """What the settings name, loaded once: every decision of the process is made under these."""

    settings: RecoverySettings
    clock: Clock
    policy: Policy
    roster: Roster
    vouchers: VoucherCodes


def configure(settings: RecoverySettings, clock: Clock = system_clock) -> Configured:
    """Load the policy, the roster and the voucher codes the settings name; raise
    :class:`ConfigError` if one is missing or invalid."""
    policy = load_policy(settings.recovery_policy_file)
    roster = staffed(load_roster(settings.recovery_roster_file), policy)
    return Configured(settings, clock, policy, roster, voucher_key(settings))


def recovery_service(pool: asyncpg.Pool, c: Configured, pace: Pace | None = None) -> RecoveryService:
    """The recovery application over ``pool``; ``pace``: what it awaits between steps of
    deciding (the pipeline's :class:`Pacer`; none for a command's single decision)."""
    s = c.settings
    return RecoveryService(pool, s, c.policy, c.roster, c.clock, s.recovery_source, vouchers=c.vouchers, pace=pace)


def authenticator(settings: RecoverySettings, get_db: Callable[[], Db]) -> Authenticator:
    """Who may sign in to the ops API, as the settings say: the service credential, the
    built-in issuer's people (on ``get_db``) and an identity provider's JWTs."""
    oidc = None
    if settings.oidc_issuer and settings.oidc_audience and settings.oidc_jwks_url:
        config = OidcConfig(settings.oidc_issuer, settings.oidc_audience, settings.oidc_jwks_url,
                            settings.oidc_roles_claim, settings.oidc_leeway_s,
                            tuple(settings.oidc_algorithms.split(",")))  # fmt: skip
        oidc = OidcVerifier(config)
    return Authenticator(get_db, local=settings.identity_local, service_token=settings.ops_api_token, oidc=oidc)


@contextlib.asynccontextmanager
async def connected(settings: RecoverySettings) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the settings' database, closed on the way out."""
    pool = await create_pool(settings)
    try:
        yield pool
    finally:
        await pool.close()


@contextlib.asynccontextmanager
async def service_for(settings: RecoverySettings, clock: Clock = system_clock) -> AsyncIterator[RecoveryService]:
    """The recovery application on its own pool (configured before connecting: a missing
    setting fails before the database is reached)."""
    configured = configure(settings, clock)
    async with connected(settings) as pool:
        yield recovery_service(pool, configured)


class Runtime(ServiceRuntime):
    """The recovery service's process: its application, the ops API, the SLA timers and the
    batch pipeline that runs the subscriber's batches through :meth:`handle`."""

    def __init__(self, settings: RecoverySettings, clock: Clock = system_clock) -> None:
        super().__init__(settings, clock, name="recovery-service", relay=RELAY,
                         http_host=settings.http_host, http_port=settings.http_port)  # fmt: skip
        self.recovery_settings = settings
        self.service: RecoveryService | None = None
        self.quarantine: Quarantine | None = None
        self.committer = OffsetCommitter()
        backoff = Backoff(settings.retry_base_s, settings.retry_max_s,
                          on_retry=lambda _: metrics.TRANSIENT_RETRIES.inc())  # fmt: skip
        self.pipeline = BatchPipeline(self.handle, _record_metrics, settings.recovery_batch_max,
                                      overlap=settings.recovery_pipeline, backoff=backoff)  # fmt: skip

    async def setup(self) -> None:
        s = self.recovery_settings
        configured = configure(s, self.clock)
        self.service = recovery_service(self.require_pool(), configured, Pacer())
        self.service.on_timers_fired = _record_decisions
        metrics.POLICY_INFO.labels(policy=configured.policy.id, version=str(configured.policy.version)).set(1)
        self.quarantine = Quarantine(self.require_pool(), CONSUMER, RELAY, s.topic_dlq, s.recovery_source, self.clock,
                                     on_dead_lettered=_dead_lettered, **s.quarantine_options())  # fmt: skip
        log.info("recovery.started", policy=configured.policy.id, policy_version=configured.policy.version)

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
        signin = authenticator(self.recovery_settings, self.require_pool)
        app.include_router(ops_router(self.require_pool, self.require_service, signin))
        mount_desk(app, Desk(self.recovery_settings, self.require_pool, self.require_service, lambda: self.producer,
                             signin))  # fmt: skip

    def http_options(self) -> HttpOptions:
        """The docs, when behind a token, are behind the ops API's."""
        return HttpOptions.of(self.recovery_settings, docs_token=self.recovery_settings.ops_api_token)

    def background(self) -> list[Coroutine[Any, Any, None]]:
        escalations = every(self.stop, self.gauge_interval_s, self._count_escalations, failed="gauges.failed")
        return [self._timers(), escalations]

    async def _count_escalations(self) -> None:
        """The escalated cases waiting for a person, by priority (every priority listed: a
        priority none waits in reads 0 rather than its last count)."""
        rows = await self.require_pool().fetch(
            "SELECT coalesce(priority, 'normal'), count(*) FROM rm_cases WHERE status = 'escalated' GROUP BY 1"
        )
        waiting = dict.fromkeys(("normal", "high", "urgent"), 0) | {r[0]: r[1] for r in rows}
        for priority, n in waiting.items():
            metrics.ESCALATIONS_WAITING.labels(priority=priority).set(n)

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
            if f.name not in ("rules", "sla_warnings", "sla_breaches"):
                setattr(total, f.name, getattr(total, f.name) + getattr(r, f.name))
        for mine, theirs in ((total.rules, r.rules), (total.sla_warnings, r.sla_warnings),
                             (total.sla_breaches, r.sla_breaches)):  # fmt: skip
            for key, n in theirs.items():
                mine[key] = mine.get(key, 0) + n
    return total


def _record_metrics(result: BatchResult, seconds: float) -> None:
    metrics.BATCH_SECONDS.observe(seconds)
    _record_decisions(result)
    metrics.DEAD_LETTERS.inc(result.dead_letters)
    metrics.DUPLICATES.inc(result.duplicates)
    metrics.FLAGGED.inc(result.flagged)


def _record_decisions(result: BatchResult) -> None:
    """What a committed batch or round of timers decided."""
    for rule, n in result.rules.items():
        metrics.DECISIONS.labels(rule=rule).inc(n)
    metrics.ESCALATIONS.inc(result.escalations)
    metrics.SLA_MET.labels(within_sla="true").inc(result.within_sla)
    metrics.SLA_MET.labels(within_sla="false").inc(result.late)
    for seconds in result.filed_to_decided:
        metrics.FILED_TO_DECIDED.observe(seconds)
    for priority, n in result.sla_warnings.items():
        metrics.SLA_WARNINGS.labels(priority=priority).inc(n)
    for priority, n in result.sla_breaches.items():
        metrics.SLA_BREACHES.labels(priority=priority).inc(n)
