"""The reference delivery worker's application: sends each requested email over SMTP with
retries and publishes the outcome (delivered or failed) to the notifications topic.

A batch of Kafka records is only *claimed*: in one transaction, each request not seen
before gets a ``sending`` row in ``deliveries`` (with the request and a lease, see
:mod:`services.notifier.adapters.claims`) and the dead letters are queued. Then one asyncio
task per claimed email starts and the handler returns, so the offsets are committed at once
and the poll loop never waits for a retry schedule that can take most of an hour (longer
than Kafka's ``max.poll.interval.ms``, past which the group would drop the worker and the
batch's emails would be sent again). A redelivered request finds its row and is not sent again.

Each task sends with retries and, in one transaction, records the outcome on its claim and
queues the outcome event in the outbox (relay ``delivery``). A background loop extends the
leases of the claims in flight and takes over claims whose lease ran out (their worker
died), so a crash loses no email. On a clean stop the tasks finish the SMTP attempt in hand
and their claims are released for the next worker at once.

What is left to chance: an email accepted by the mail server just before a crash, in the
moment before its outcome is committed, is sent again by the worker that takes over (with
the same Message-ID, so a receiving system can drop the copy).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from opentelemetry.trace import SpanKind
from structlog.contextvars import bound_contextvars

from services.common import tracing
from services.common.clock import Clock
from services.common.contract import CloudEvent
from services.common.contract.events import (
    EmailDelivered,
    EmailFailed,
    EmailRequested,
)
from services.common.kafka import decode_batch
from services.common.logging import get_logger
from services.common.outbox import enqueue, outbox_message
from services.common.periodic import every
from services.common.records import InboundRecord, derived_event_id, envelope
from services.notifier import metrics
from services.notifier.adapters import claims
from services.notifier.adapters.claims import Claim
from services.notifier.delivery import deliver, schedule
from services.notifier.domain.errors import DeliveryError, TemporaryDeliveryError
from services.notifier.domain.ports import EmailSender
from services.notifier.settings import NotifierSettings

log = get_logger(__name__)

RELAY = "delivery"
NAME = "delivery-worker"
ACCEPTED = frozenset({EmailRequested.TYPE, EmailDelivered.TYPE, EmailFailed.TYPE})
SWEEP_LIMIT = 100  # claims taken over per statement


class CountingSender:
    """Counts the attempts made through ``sender`` (for the ``deliveries`` record and the
    metrics), each in an ``smtp send`` span, and keeps the last reply code refused."""

    def __init__(self, sender: EmailSender) -> None:
        self._sender = sender
        self.attempts = 0
        self.last_code: int | None = None

    async def send(self, req: EmailRequested, from_address: str) -> None:
        self.attempts += 1
        if self.attempts > 1:
            metrics.RETRY_ATTEMPTS.inc()
        attributes = {"network.protocol.name": "smtp", "smtp.attempt": self.attempts}
        with tracing.span("smtp send", kind=SpanKind.CLIENT, attributes=attributes) as attempt:
            try:
                await self._sender.send(req, from_address)
            except DeliveryError as exc:
                self.last_code = exc.code
                if isinstance(exc, TemporaryDeliveryError):
                    metrics.EMAILS_DEFERRED.inc()
                if attempt is not None:
                    attempt.set_attribute("smtp.response.code", exc.code if exc.code is not None else 0)
                    tracing.failed(attempt, type(exc).__name__)
                raise


class _Stopping(Exception):
    """Raised in place of the wait before the next attempt once the worker is stopping."""


class _Turns:
    """At most ``limit`` attempts at once through ``sender``; one still waiting for its turn
    when the worker stops is not made (its claim is released with the others)."""

    def __init__(self, sender: EmailSender, limit: int, stopping: asyncio.Event) -> None:
        self._sender = sender
        self._turns = asyncio.Semaphore(limit)
        self._stopping = stopping

    async def send(self, req: EmailRequested, from_address: str) -> None:
        async with self._turns:
            if self._stopping.is_set():
                raise _Stopping
            await self._sender.send(req, from_address)


@dataclass(slots=True)
class InFlight:
    """An email being sent: its claim, its task and when its lease was last extended
    (``time.monotonic()`` taken before the statement, so never later than the database's)."""

    claim: Claim
    task: asyncio.Task[None]
    renewed_at: float


class DeliveryWorker:
    def __init__(self, pool: asyncpg.Pool, settings: NotifierSettings, sender: EmailSender, clock: Clock) -> None:
        self.pool = pool
        self.settings = settings
        self.sender = sender
        self.clock = clock
        self.source = settings.delivery_source
        self.lease_s = settings.delivery_claim_lease_s
        self.inflight: dict[uuid.UUID, InFlight] = {}
        self._stopping = asyncio.Event()
        self._turns = _Turns(sender, settings.delivery_max_connections, self._stopping)

    async def handle_records(self, records: Sequence[InboundRecord]) -> int:
        """Claim the batch's new requests and start sending them; return how many were claimed.

        Returns without waiting for the emails: their outcomes are recorded as they come.
        """
        requests: dict[str, CloudEvent] = {}
        decoded, dead = decode_batch(
            records, ACCEPTED, source=self.source, now=self.clock(), limits=self.settings.dead_letter_limits()
        )
        for event in decoded:
            if isinstance(event.data, EmailRequested):
                requests.setdefault(event.data.notification_id, event.envelope)
        started = time.monotonic()
        batch: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        if tracing.enabled():
            traces = [(e.traceparent, e.tracestate) for e in requests.values()]
            batch = tracing.batch_span([r.topic for r in records], len(records), self.settings.delivery_group_id,
                                       traces)  # fmt: skip
        with batch:
            async with self.pool.acquire() as conn, conn.transaction():
                claimed = await claims.claim_new(conn, requests, self.lease_s, self.clock())
                await enqueue(conn, RELAY, [outbox_message(d, self.settings.topic("dlq")) for d in dead])
        for claim in claimed:
            self._start(claim, started)
        return len(claimed)

    def _start(self, claim: Claim, renewed_at: float) -> None:
        task = asyncio.create_task(self._send(claim), name=f"deliver-{claim.notification_id}")
        self.inflight[claim.claim_id] = InFlight(claim, task, renewed_at)
        task.add_done_callback(lambda _: self.inflight.pop(claim.claim_id, None))

    async def _send(self, claim: Claim) -> None:
        """Deliver the claimed email in a span that continues the request's trace, its ids
        bound for what it logs; record the outcome (carrying that trace) on the claim."""
        request = claim.request
        with bound_contextvars(case_id=claim.email.case_id, correlation_id=request.correlationid,
                               event_id=request.id, trace_id=tracing.trace_id_of(request.traceparent)):  # fmt: skip
            with tracing.span("send email", kind=SpanKind.PRODUCER, context=(request.traceparent, request.tracestate),
                              attributes={"network.protocol.name": "smtp",
                                          "notifier.notification_id": claim.notification_id}) as sending:  # fmt: skip
                trace = (
                    tracing.context_of(sending) if sending is not None else (request.traceparent, request.tracestate)
                )
                done = await self._deliver(claim, sending)
            if done is not None:
                await self._record(claim, done[0], done[1], trace)

    async def _deliver(self, claim: Claim, sending: Any) -> tuple[EmailDelivered | EmailFailed, int] | None:
        """The outcome and the attempts it took, or None when stopping or on a fault here."""
        req = claim.email
        sender = CountingSender(self._turns)
        try:
            outcome = await deliver(sender, req, self.settings.smtp_from, schedule(self.settings),
                                    sleep=self._sleep, clock=self.clock)  # fmt: skip
        except _Stopping:
            return None  # stopping between attempts: the claim is released for another worker
        except Exception as exc:
            # Not a delivery error but a fault here: the claim runs out and a sweep retries it.
            log.error("email.send_crashed", notification_id=req.notification_id, error=type(exc).__name__)
            tracing.failed(sending, exc)
            return None
        if isinstance(outcome, EmailDelivered):
            status = "delivered"
            metrics.EMAILS_SENT.inc()
            if req.decided_at is not None:
                metrics.DECIDED_TO_DELIVERED.observe(max(0.0, (outcome.at - req.decided_at).total_seconds()))
        else:
            status = "failed"
            metrics.EMAILS_FAILED.labels(code_class=metrics.code_class(sender.last_code)).inc()
            tracing.failed(sending, "email failed")
        log.info("email.outcome", notification_id=req.notification_id,
                 attempts=sender.attempts, status=status)  # fmt: skip
        return outcome, sender.attempts

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        if self._stopping.is_set():
            raise _Stopping

    async def _record(
        self, claim: Claim, outcome: EmailDelivered | EmailFailed, attempts: int, trace: tracing.TraceContext
    ) -> None:
        """Record the outcome on the claim and queue its event, in one transaction.

        Retried until it is written: while this task runs its claim is kept alive, whereas
        giving up would let the claim run out and the email be sent again.
        """
        status, error = ("failed", outcome.error) if isinstance(outcome, EmailFailed) else ("delivered", None)
        while True:
            now = self.clock()
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    held = await claims.finish(conn, claim, status=status, attempts=attempts, error=error, now=now)
                    if held:
                        event = self._outcome_event(claim.request, outcome, now, trace)
                        await enqueue(conn, RELAY, [outbox_message(event, self.settings.topic("notifications"))])
            except Exception as exc:
                log.warning("email.record_failed", notification_id=claim.notification_id, error=type(exc).__name__)
                await asyncio.sleep(self.lease_s / 3)
                continue
            if not held:
                log.warning("email.claim_lost", notification_id=claim.notification_id)
            return

    def _outcome_event(
        self, cause: CloudEvent, outcome: EmailDelivered | EmailFailed, now: datetime, trace: tracing.TraceContext
    ) -> CloudEvent:
        stream = f"delivery-{outcome.notification_id}"
        return envelope(outcome, event_id=derived_event_id(outcome.notification_id, stream, 0),
                        source=self.source, time=now, subject=cause.subject,
                        correlation_id=cause.correlationid, causation_id=cause.id,
                        traceparent=trace[0], tracestate=trace[1])  # fmt: skip

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop``: every third of a lease, extend the leases of the emails in flight
        and take over the claims whose lease ran out (at once at start: a restart resumes
        the claims a clean stop released)."""
        await every(stop, self.lease_s / 3, self._renew_and_sweep, failed="claims.failed")

    async def _renew_and_sweep(self) -> None:
        await self.renew()
        while await self.sweep() == SWEEP_LIMIT:
            pass

    async def renew(self) -> None:
        """Extend the leases of the emails in flight; stop sending those no longer held."""
        held = [f for f in self.inflight.values() if not f.task.done()]
        if not held:
            return
        started = time.monotonic()
        try:
            kept = await claims.renew(self.pool, [f.claim.claim_id for f in held], self.lease_s)
        except Exception as exc:
            log.warning("claims.renew_failed", claims=len(held), error=type(exc).__name__)
            # A lease that runs out before the next try may be taken over: stop sending it.
            next_try = started + self.lease_s / 3
            kept = {f.claim.claim_id for f in held if f.renewed_at + self.lease_s > next_try}
        else:
            for f in held:
                if f.claim.claim_id in kept:
                    f.renewed_at = started
        for f in held:
            if f.claim.claim_id not in kept:
                log.warning("email.claim_lost", notification_id=f.claim.notification_id)
                f.task.cancel()

    async def sweep(self) -> int:
        """Take over claims whose lease ran out and start sending them; return how many."""
        if self._stopping.is_set():
            return 0
        started = time.monotonic()
        mine = [f.claim.notification_id for f in self.inflight.values()]
        taken = await claims.take_expired(self.pool, self.lease_s, skip=mine, limit=SWEEP_LIMIT)
        metrics.CLAIM_TAKEOVERS.inc(len(taken))
        for claim in taken:
            log.info("email.claim_taken_over", notification_id=claim.notification_id)
            self._start(claim, started)
        return len(taken)

    async def shutdown(self, grace_s: float) -> None:
        """Stop sending: let each email finish the SMTP attempt in hand (up to ``grace_s``),
        cancel the rest and release their claims, so another worker resumes them at once."""
        self._stopping.set()
        inflight = list(self.inflight.values())
        tasks = [f.task for f in inflight]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        released = await claims.release(self.pool, [f.claim.claim_id for f in inflight])
        log.info("delivery.stopped", released=released)
