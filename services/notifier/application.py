"""The notifier application: decisions and escalations in, one email request each out — one
transaction per batch of Kafka records.

In that transaction: claim the records in the inbox, compose the email requests, append
each to its own ``notification-<id>`` stream (the event id is derived from the notification
id, so a redelivery or a second instance appends nothing new), record it in the
``notifications`` read model and queue it for Kafka via the outbox. Delivery outcomes read
back from the notifications topic update the read model's status.

A decision or escalation addressed to a forgotten customer (their email is the erased
marker: made after ``recoveryctl customers forget``, or folded from sealed data whose key
is gone) gets no email: nothing is rendered or queued, and its ``notifications`` row is
recorded at once as ``failed`` with the reason :data:`NOT_SENT_ERASED`, counted in
``BatchResult.not_sent`` and ``notifier_not_sent_total{reason="customer_erased"}``.

A lost database connection is raised as ``StoreUnavailable`` (transient, see ``errors.py``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from opentelemetry.trace import SpanKind
from structlog.contextvars import bound_contextvars

from services.common import tracing
from services.common.clock import Clock
from services.common.contract import CloudEvent, ContractError, Event, EventData, encode
from services.common.contract.events import (
    CaseEscalated,
    CaseOpened,
    ChargeFlagged,
    DecisionMade,
    EmailDelivered,
    EmailFailed,
    EmailRequested,
    SlaBreached,
    SlaWarning,
)
from services.common.db import batch_transaction
from services.common.eventstore import ANY_VERSION, AppendRequest
from services.common.eventstore.postgres import append_on
from services.common.eventstore.shred import ERASED_EMAIL
from services.common.failures import is_connection_error
from services.common.kafka import dead_letter, decode_batch
from services.common.logging import get_logger
from services.common.outbox import claim_inbox, enqueue, outbox_message
from services.common.records import InboundRecord, derived_event_id, envelope, to_new_event
from services.common.redact import scrub
from services.notifier import metrics
from services.notifier.domain.compose import compose, template_for
from services.notifier.domain.ids import notification_id
from services.notifier.domain.templates import TemplateSet
from services.notifier.errors import StoreUnavailable, TemplateSetError
from services.notifier.queries import NOT_SENT_ERASED
from services.notifier.settings import NotifierSettings

log = get_logger(__name__)

CONSUMER = "notifier-service"
RELAY = "notifier"
HANDLED = frozenset({DecisionMade.TYPE, CaseEscalated.TYPE, EmailDelivered.TYPE, EmailFailed.TYPE})
# Known types on the topics the notifier reads that need no email: skipped, never dead-lettered.
SKIPPED = frozenset({CaseOpened.TYPE, SlaWarning.TYPE, SlaBreached.TYPE, ChargeFlagged.TYPE, EmailRequested.TYPE})
ACCEPTED = HANDLED | SKIPPED


def notification_stream(notification_id: str) -> str:
    return f"notification-{notification_id}"


@dataclass
class BatchResult:
    accepted: int = 0
    duplicates: int = 0
    skipped: int = 0
    dead_letters: int = 0
    requested: int = 0
    outcomes: int = 0
    not_sent: int = 0  # addressed to a forgotten customer: recorded, never sent


class NotifierService:
    def __init__(self, pool: asyncpg.Pool, settings: NotifierSettings, templates: TemplateSet, clock: Clock) -> None:
        self.pool = pool
        self.settings = settings
        self.templates = templates
        self.clock = clock
        self.source = settings.notifier_source

    async def handle_records(self, records: Sequence[InboundRecord]) -> BatchResult:
        good: list[Event[EventData]] = []
        now = self.clock()
        result = BatchResult()
        decoded, dead = decode_batch(
            records, ACCEPTED, source=self.source, now=now, limits=self.settings.dead_letter_limits()
        )
        for event in decoded:
            # A replay (``replay: true``) was answered when it first happened; it is not
            # claimed in the inbox either, so an original that arrives only after its
            # replay still gets its email.
            if event.envelope.type in SKIPPED or event.envelope.replay:
                result.skipped += 1
            else:
                good.append(event)
        batch: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        if tracing.enabled():
            traces = [(e.envelope.traceparent, e.envelope.tracestate) for e in good]
            batch = tracing.batch_span([r.topic for r in records], len(records), self.settings.notifier_group_id,
                                       traces)  # fmt: skip
        try:
            with batch:
                async with batch_transaction(self.pool) as conn:
                    dead += await self._handle(conn, good, self.clock(), result)
                    if dead:
                        topic = self.settings.topic("dlq")
                        await enqueue(conn, RELAY, [outbox_message(d, topic) for d in dead])
        except Exception as exc:
            if is_connection_error(exc):
                raise StoreUnavailable(f"the database is unavailable ({type(exc).__name__})") from exc
            raise
        result.dead_letters = len(dead)
        metrics.EMAILS_REQUESTED.inc(result.requested)  # committed
        return result

    async def _handle(
        self,
        conn: asyncpg.Connection,
        events: list[Event[EventData]],
        now: datetime,
        result: BatchResult,
    ) -> list[CloudEvent]:
        """Handle the batch; return dead letters for decisions no email could be made for."""
        fresh = await claim_inbox(conn, CONSUMER, [e.envelope.id for e in events])
        todo: list[Event[EventData]] = []
        for e in events:
            if e.envelope.id in fresh:
                fresh.discard(e.envelope.id)  # a repeat inside the batch counts once
                todo.append(e)
        result.duplicates = len(events) - len(todo)
        result.accepted = len(todo)
        requests: list[tuple[EmailRequested, CloudEvent]] = []
        outcomes: list[EmailDelivered | EmailFailed] = []
        unsendable: list[CloudEvent] = []
        unsent: list[str] = []
        erased: list[tuple[CloudEvent, DecisionMade | CaseEscalated]] = []
        for e in todo:
            data, env = e.data, e.envelope
            # Each message's handling continues its trace, and names it and its case in the log.
            ids = {"event_id": env.id, "correlation_id": env.correlationid, "case_id": getattr(data, "case_id", None),
                   "trace_id": tracing.trace_id_of(env.traceparent)}  # fmt: skip
            topic = self.settings.topic(data.TOPIC)
            attributes = tracing.messaging("process", topic, message__id=env.id, cloudevents__event_type=env.type)
            with (
                bound_contextvars(**ids),
                tracing.span(f"process {topic}", kind=SpanKind.CONSUMER, context=(env.traceparent, env.tracestate),
                             attributes=attributes) as processing,
            ):  # fmt: skip
                if isinstance(data, (DecisionMade, CaseEscalated)):
                    if data.customer is not None and str(data.customer.email) == ERASED_EMAIL:
                        erased.append((env, data))
                        continue
                    trace = (
                        tracing.context_of(processing) if processing is not None else (env.traceparent, env.tracestate)
                    )
                    try:
                        req = self._request(env, data, now, trace)
                    except TemplateSetError as exc:
                        # Not dropped: the decision goes to the dead-letter topic with the reason,
                        # to be sent again (not as a replay) once the templates are fixed.
                        log.error("notification.template_failed", event_id=env.id, error=str(exc))
                        tracing.failed(processing, exc)
                        unsendable.append(self._unsendable(env, exc, now))
                        unsent.append(env.id)
                        continue
                    if req is not None:
                        requests.append(req)
                elif isinstance(data, (EmailDelivered, EmailFailed)):
                    outcomes.append(data)
        # The whole batch's requests, then its outcomes: a statement each, not one per record.
        published = await self._record_requests(conn, requests, now)
        result.outcomes = await self._record_outcomes(conn, outcomes, now)
        result.not_sent = await self._record_not_sent(conn, erased, now)
        result.requested = len(published)
        if published:
            topic = self.settings.topic("notifications")
            await enqueue(conn, RELAY, [outbox_message(ev, topic) for ev in published])
        if unsendable:
            # Out of the inbox again, so the decision sent once more is handled, not skipped.
            await conn.execute(
                "DELETE FROM inbox WHERE consumer = $1 AND message_id = ANY($2::text[])",
                CONSUMER, unsent,
            )  # fmt: skip
        return unsendable

    def _unsendable(self, cause: CloudEvent, exc: TemplateSetError, now: datetime) -> CloudEvent:
        error = ContractError("rejected", f"no apology email could be rendered: {exc}")
        return dead_letter(error, topic=self.settings.topic("decisions"), partition=None, offset=None,
                           key=cause.subject.encode() if cause.subject else None, value=encode(cause),
                           source=self.source, now=now, limits=self.settings.dead_letter_limits())  # fmt: skip

    def _request(
        self, cause: CloudEvent, data: DecisionMade | CaseEscalated, now: datetime, trace: tracing.TraceContext
    ) -> tuple[EmailRequested, CloudEvent] | None:
        """The email request for ``cause`` and its envelope (carrying ``trace``), or None when
        it needs no email. Raises :class:`TemplateSetError` when the templates cannot render it."""
        with tracing.span("render", attributes={"notifier.case_id": data.case_id}):
            req = compose(cause, data, self.templates)
        if req is None:
            log.info("notification.none", event_id=cause.id, type=cause.type)
            return None
        metrics.EMAILS_RENDERED.labels(template=req.template).inc()
        stream = notification_stream(req.notification_id)
        ev = envelope(req, event_id=derived_event_id(req.notification_id, stream, 0),
                      source=self.source, time=now, subject=cause.subject,
                      correlation_id=cause.correlationid, causation_id=cause.id,
                      traceparent=trace[0], tracestate=trace[1])  # fmt: skip
        return req, ev

    async def _record_requests(
        self, conn: asyncpg.Connection, requests: list[tuple[EmailRequested, CloudEvent]], now: datetime
    ) -> list[CloudEvent]:
        """Append the requests, each to its own stream, and record them; return those that are
        new (one asked for before, by a redelivery or another instance, is in the table)."""
        if not requests:
            return []
        await append_on(conn, [
            AppendRequest(notification_stream(req.notification_id), ANY_VERSION, [to_new_event(ev)])
            for req, ev in requests
        ])  # fmt: skip
        rows = await conn.fetch(
            "INSERT INTO notifications (notification_id, case_id, causation, template, status,"
            " requested_at, updated_at)"
            " SELECT n, c, k, t, 'requested', $5, $5 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])"
            " AS r(n, c, k, t) ON CONFLICT DO NOTHING RETURNING notification_id",
            [req.notification_id for req, _ in requests], [req.case_id for req, _ in requests],
            [req.causation for req, _ in requests], [req.template for req, _ in requests], now,
        )  # fmt: skip
        inserted = {r[0] for r in rows}
        published: list[CloudEvent] = []
        for req, ev in requests:
            if req.notification_id in inserted:
                log.info("notification.requested", notification_id=req.notification_id,
                         case_id=req.case_id, template=req.template)  # fmt: skip
                published.append(ev)
        return published

    async def _record_not_sent(
        self, conn: asyncpg.Connection, erased: list[tuple[CloudEvent, DecisionMade | CaseEscalated]], now: datetime
    ) -> int:
        """Record the emails not sent to forgotten customers as failed, with the reason;
        return how many are new (one recorded before, by a redelivery, is in the table)."""
        if not erased:
            return 0
        templates = [template_for(data) for _, data in erased]
        ids = [notification_id(cause.id, t) for (cause, _), t in zip(erased, templates, strict=True)]
        rows = await conn.fetch(
            "INSERT INTO notifications (notification_id, case_id, causation, template, status, error,"
            " requested_at, updated_at)"
            " SELECT n, c, k, t, 'failed', $5, $6, $6 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])"
            " AS r(n, c, k, t) ON CONFLICT DO NOTHING RETURNING notification_id",
            ids, [data.case_id for _, data in erased], [cause.id for cause, _ in erased],
            templates, NOT_SENT_ERASED, now,
        )  # fmt: skip
        for cause, data in erased:
            log.info("notification.not_sent", event_id=cause.id, case_id=data.case_id, reason="customer_erased")
        metrics.NOT_SENT.labels(reason="customer_erased").inc(len(rows))
        return len(rows)

    async def _record_outcomes(
        self, conn: asyncpg.Connection, outcomes: list[EmailDelivered | EmailFailed], now: datetime
    ) -> int:
        """Set each requested notification's status from its outcome (the first one that
        comes, for a notification with two); return how many changed."""
        first: dict[str, tuple[str, str | None]] = {}
        for data in outcomes:
            # Another delivery consumer's report may quote the recipient: masked before it is kept.
            outcome = ("failed", scrub(data.error)) if isinstance(data, EmailFailed) else ("delivered", None)
            first.setdefault(data.notification_id, outcome)
        if not first:
            return 0
        updated = await conn.execute(
            "UPDATE notifications AS n SET status = o.status, error = o.error, updated_at = $4"
            " FROM unnest($1::text[], $2::text[], $3::text[]) AS o(id, status, error)"
            " WHERE n.notification_id = o.id AND n.status = 'requested'",
            list(first), [o[0] for o in first.values()], [o[1] for o in first.values()], now,
        )  # fmt: skip
        return int(updated.rsplit(" ", 1)[1])
