"""The recovery application: load state, decide, append, project, queue — one transaction
per batch of Kafka records (or of due timers, or of one person's decision, approval or
rejection, with its audit record).

A batch reads what it needs up front, in a few round trips whatever its size (the inbox,
the streams of its cases and charges with those of the cases waiting for its charges, the
customers' histories, what its new charges' usual amounts are computed from), then handles
its records one by one in the order they came (the consumer's order, which keeps each
partition's), each seeing what the records before it did: a charge earlier in the batch,
its refunds, a case it opened. So the same records give the same events whether they come
in one batch or in many (each event's id is derived from the message that caused it, its
case and its place among that message's events on the case), and a redelivery records
nothing twice.

A batch that loses a race with another instance (``ConcurrencyConflict`` on a case stream,
as during a rebalance) is rolled back whole and handled again on fresh state; after
``MAX_RETRIES`` such races it raises ``RetriesExhausted`` (transient: redelivered later).

The application talks to ports only (``services/recovery/ports.py``): a unit of work whose
transaction holds the event store, the read models and the inbox and outbox, on PostgreSQL
(``adapters/postgres.py``, by default, from the pool) or in memory (``adapters/memory.py``).
Deciding and its bookkeeping (the case folded event by event, the customers' histories) is
``bookkeeping.py``. Its caller paces it (``pace``, see ``services/common/pacing.py``) and,
in a pipeline, holds it until the batch ahead is over (``ready``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from opentelemetry.trace import SpanKind
from structlog.contextvars import bind_contextvars, bound_contextvars, reset_contextvars

from services.common import tracing
from services.common.clock import Clock
from services.common.contract import (
    EVENT_TYPES,
    CloudEvent,
    Event,
    EventData,
)
from services.common.contract.construct import constructor
from services.common.contract.events import (
    ChargePosted,
    ChargeRefunded,
    ComplaintFiled,
    DecisionMade,
    Reason,
    Remedy,
    SlaBreached,
    SlaWarning,
)
from services.common.eventstore import AppendRequest, EncodedEvent, RecordedEvent
from services.common.kafka import decode_batch
from services.common.logging import get_logger
from services.common.outbox import outbox_message, sealed_message
from services.common.pacing import Pace, unpaced
from services.common.records import InboundRecord, Sealed, derived_event_id, seal, to_new_event
from services.common.settings import CommonSettings
from services.recovery.audit import IN_PROCESS, AuditRecord, Client, audit_stream
from services.recovery.bookkeeping import Histories, decide_and_record
from services.recovery.domain.anomaly import assess_charge
from services.recovery.domain.case import Case, apply, case_id_for
from services.recovery.domain.charge_record import ChargeRecord, charge_record
from services.recovery.domain.commands import (
    AddNote,
    AgentDecide,
    AnyCommand,
    ApproveDecision,
    AssignCase,
    ChargeArrived,
    FileComplaint,
    FireTimer,
    RejectDecision,
)
from services.recovery.domain.events import (
    INTERNAL,
    INTERNAL_EVENT_TYPES,
    CaseAssigned,
    ChargeAssessed,
    DecisionApproved,
    DecisionProposed,
    DecisionRejected,
    NoteAdded,
)
from services.recovery.domain.facts import ChargeFacts
from services.recovery.domain.policy import Policy
from services.recovery.domain.remedies import VoucherCodes, VoucherKey
from services.recovery.domain.roster import Roster
from services.recovery.domain.usual import Usual
from services.recovery.errors import CaseNotFound, ConcurrencyConflict, ConfigError, RetriesExhausted
from services.recovery.ports import Transaction, UnitOfWork
from services.recovery.replay.trusted import loader
from services.recovery.settings import RecoverySettings

log = get_logger(__name__)

CONSUMER = "recovery-service"
RELAY = "recovery"
ACCEPTED = frozenset({ChargePosted.TYPE, ChargeRefunded.TYPE, ComplaintFiled.TYPE})
REGISTRY: dict[str, type[EventData]] = {**EVENT_TYPES, **{m.TYPE: m for m in INTERNAL_EVENT_TYPES}}
MAX_RETRIES = 8
# Commands and histories made of values validated already (decoded events, read models).
_file_complaint = constructor(FileComplaint)
_charge_arrived = constructor(ChargeArrived)
_charge_assessed = constructor(ChargeAssessed)
CASE_PREFIX = "case-"
CHARGE_PREFIX = "charge-"
VOUCHER_KEY_UNSET = (
    "RECOVERY_VOUCHER_SECRET is not set: voucher codes are derived under it (at least 32 characters;"
    " see docs/ledger.md)"
)


def case_stream(case_id: str) -> str:
    return f"{CASE_PREFIX}{case_id}"


def charge_stream(charge_id: str) -> str:
    return f"{CHARGE_PREFIX}{charge_id}"


def voucher_key(settings: CommonSettings) -> VoucherKey:
    """The voucher codes under the settings' ``RECOVERY_VOUCHER_SECRET``; raise
    :class:`ConfigError` (stopping the service at start) when it is not set."""
    secret = settings.recovery_voucher_secret if isinstance(settings, RecoverySettings) else None
    if secret is None:
        raise ConfigError(VOUCHER_KEY_UNSET)
    return VoucherKey(secret.get_secret_value().encode())


@dataclass
class BatchResult:
    accepted: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    decisions: int = 0
    escalations: int = 0
    flagged: int = 0
    rules: dict[str, int] = field(default_factory=dict)
    within_sla: int = 0
    late: int = 0
    # Seconds from each decided case's first complaint to its decision.
    filed_to_decided: list[float] = field(default_factory=list)
    sla_warnings: dict[str, int] = field(default_factory=dict)  # by the case's priority
    sla_breaches: dict[str, int] = field(default_factory=dict)


@dataclass
class _Work:
    """What one transaction accumulates before it appends."""

    now: datetime
    cases: dict[str, Case | None] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    pending: dict[str, list[tuple[EventData, Sealed]]] = field(default_factory=dict)
    # How many events each (case, cause) has recorded in this transaction: the next one's index.
    caused: dict[tuple[str, str], int] = field(default_factory=dict)
    requests: list[AppendRequest] = field(default_factory=list)
    # What the read models take from this batch's events, by event id: an event the store
    # already holds (a message handled before and out of the inbox since) is left out.
    projected: list[tuple[str, EventData, datetime]] = field(default_factory=list)
    published: list[tuple[Sealed, EventData]] = field(default_factory=list)
    histories: Histories = field(default_factory=Histories)
    # Every charge this transaction has read or been sent, as recorded so far.
    charges: dict[str, ChargeRecord] = field(default_factory=dict)
    # The cases listening for each charge (waiting for it and not decided).
    waiting: dict[str, list[str]] = field(default_factory=dict)
    # The charges this batch posts first, and the id of the message that brought each.
    posted: dict[str, str] = field(default_factory=dict)
    usual: Usual = field(default_factory=Usual)
    result: BatchResult = field(default_factory=BatchResult)
    # The trace context each cause's events carry (by the causing message's id: the span
    # that handled it, or with tracing off the message's own), and the one for the rest.
    traces: dict[str, tracing.TraceContext] = field(default_factory=dict)
    trace: tracing.TraceContext = tracing.NO_TRACE

    def charge(self, charge_id: str | None) -> ChargeFacts | None:
        """The charge with its ledger as this transaction knows it now (None: not posted)."""
        record = self.charges.get(charge_id) if charge_id else None
        return record.facts() if record is not None else None


Ready = Callable[[frozenset[str]], Awaitable[None]]
"""Told a batch's customers once it is decoded, returns when the batch may read its state
(in a pipeline: once the batch ahead is over, if it shares a customer)."""


class RecoveryService:
    def __init__(
        self,
        pool: Any,
        settings: CommonSettings,
        policy: Policy,
        roster: Roster,
        clock: Clock,
        source: str = "recovery-service",
        *,
        vouchers: VoucherCodes | None = None,
        uow: UnitOfWork | None = None,
        pace: Pace | None = None,
    ) -> None:
        """``vouchers``: the voucher codes; by default :func:`voucher_key` of ``settings``.
        ``uow``: the unit of work; by default PostgreSQL's on ``pool`` (an asyncpg pool; None
        with ``uow`` given: the in-memory twins, say). ``pace``: awaited between steps of deciding,
        to hand the event loop back (by default never)."""
        self.vouchers = vouchers if vouchers is not None else voucher_key(settings)
        if uow is None:
            from services.recovery.adapters.postgres import PostgresUnitOfWork

            uow = PostgresUnitOfWork(pool)
        self.pool = pool
        self.uow = uow
        self.pace = pace or unpaced
        self.settings = settings
        self.policy = policy
        self.roster = roster
        self.clock = clock
        self.source = source
        self.dead_letter_limits = settings.dead_letter_limits()
        self.group_id = getattr(settings, "recovery_group_id", CONSUMER)
        # Told what each committed round of timers decided (the runtime counts it).
        self.on_timers_fired: Callable[[BatchResult], None] = lambda _: None

    # ------------------------------------------------------------------ Kafka batches

    async def handle_records(self, records: Sequence[InboundRecord], ready: Ready | None = None) -> BatchResult:
        """Handle a batch in one transaction. ``ready``: awaited with the batch's customers
        before it reads anything (a pipeline's turn, see :data:`Ready`)."""
        good, dead = decode_batch(
            records, ACCEPTED, source=self.source, now=self.clock(), limits=self.dead_letter_limits
        )
        if ready is not None:
            await ready(frozenset(_customer_of(e) for e in good))
        batch = None
        if tracing.enabled():
            traces = [(e.envelope.traceparent, e.envelope.tracestate) for e in good]
            batch = tracing.batch_span([r.topic for r in records], len(records), self.group_id, traces)
        with bound_contextvars(batch_records=len(records)), batch or contextlib.nullcontext():
            for attempt in range(MAX_RETRIES):
                try:
                    async with self.uow.batch() as tx:
                        result = await self._handle(tx, good, self.clock())
                        if dead:
                            topic = self.settings.topic("dlq")
                            await tx.messages.enqueue(RELAY, [outbox_message(d, topic) for d in dead])
                    result.dead_letters = len(dead)
                    return result
                except ConcurrencyConflict as exc:
                    log.info("batch.concurrency_retry", attempt=attempt, stream=exc.stream)
        raise RetriesExhausted("", "batch kept losing races with another instance; will be redelivered")

    async def _handle(self, tx: Transaction, events: list[Event[EventData]], now: datetime) -> BatchResult:
        w = _Work(now=now)
        fresh = await tx.messages.claim_inbox(CONSUMER, [e.envelope.id for e in events])
        todo: list[Event[EventData]] = []
        for e in events:
            if e.envelope.id in fresh:
                fresh.discard(e.envelope.id)  # a repeat inside the batch counts once
                todo.append(e)
        w.result.duplicates = len(events) - len(todo)
        w.result.accepted = len(todo)
        await self._load_context(tx, w, todo)
        # In the order they came, each in a span that continues its trace (tracing on).
        tokens = bind_contextvars(event_id=None, correlation_id=None, case_id=None, charge_id=None, trace_id=None)
        traced = tracing.enabled()
        try:
            for e in todo:
                data, env = e.data, e.envelope
                if env.traceparent is not None:
                    w.traces[env.id] = (env.traceparent, env.tracestate)
                if traced:
                    with tracing.span("decide", kind=SpanKind.CONSUMER, context=(env.traceparent, env.tracestate),
                                      attributes=_message_attributes(env)) as decide:  # fmt: skip
                        w.traces[env.id] = trace = tracing.context_of(decide)  # type: ignore[arg-type]
                        self._on_message(w, env, data, trace[0])
                else:
                    self._on_message(w, env, data, env.traceparent)
                await self.pace()
        finally:
            reset_contextvars(**tokens)
        await self._meet_charges(tx, w)
        with tracing.span("append", kind=SpanKind.CLIENT, attributes=tracing.database("append")):
            await self._commit(tx, w)
        return w.result

    def _on_message(self, w: _Work, env: CloudEvent, data: EventData, traceparent: str | None) -> None:
        """Handle one message, its ids bound for what it logs. Exact types (decoded from the
        registry): isinstance on pydantic goes through ABCMeta."""
        kind = type(data)
        trace_id = tracing.trace_id_of(traceparent)
        if kind is ComplaintFiled:
            cid = case_id_for(data)  # type: ignore[arg-type]
            bind_contextvars(event_id=env.id, correlation_id=data.complaint_id, case_id=cid,  # type: ignore[attr-defined]
                             charge_id=data.charge_id, trace_id=trace_id)  # type: ignore[attr-defined]  # fmt: skip
            self._on_complaint(w, env, data, cid)  # type: ignore[arg-type]
        else:
            bind_contextvars(event_id=env.id, correlation_id=env.correlationid, case_id=None,
                             charge_id=data.charge_id, trace_id=trace_id)  # type: ignore[attr-defined]  # fmt: skip
            if kind is ChargePosted:
                self._on_charge(w, env, data)  # type: ignore[arg-type]
            else:
                self._on_refund(w, env, data)  # type: ignore[arg-type]

    async def _load_context(self, tx: Transaction, w: _Work, todo: list[Event[EventData]]) -> None:
        """Everything the batch's records read, before the first is handled: their cases,
        the charges they name or post (with those charges' records) and the cases waiting
        for those, the customers' histories, and the usual amounts' inputs."""
        filed = [e.data for e in todo if type(e.data) is ComplaintFiled]
        new = [e.data for e in todo if type(e.data) is ChargePosted]
        named = [c.charge_id for c in filed if c.charge_id]
        posted = [c.charge_id for c in new]
        await self._load(tx, w, [case_id_for(c) for c in filed], [*named, *posted], waiting_for=posted)
        customers = {c.customer.id for c in filed}
        customers |= {c.customer_id for c in new}
        customers |= {c.customer_id for c in w.cases.values() if c is not None}
        since = w.now - timedelta(days=self.policy.guardrail_window_days + 1)
        w.histories = Histories(await tx.readmodels.customer_histories(customers, since))
        unrecorded = [c for c in new if w.charges[c.charge_id].posted is None]
        w.usual = await tx.readmodels.usual_amounts(unrecorded)

    async def _load(
        self,
        tx: Transaction,
        w: _Work,
        case_ids: Iterable[str],
        charge_ids: Iterable[str] = (),
        *,
        waiting_for: Iterable[str] = (),
    ) -> None:
        """Fold into ``w`` the cases not loaded yet, the records of ``charge_ids`` and the
        cases waiting for any of ``waiting_for``, in one round trip."""
        wanted = [c for c in dict.fromkeys(case_ids) if c not in w.cases]
        charges = [c for c in dict.fromkeys(charge_ids) if c not in w.charges]
        streams = [case_stream(c) for c in wanted] + [charge_stream(c) for c in charges]
        waiting = list(dict.fromkeys(waiting_for))
        if not streams and not waiting:
            return
        found = await tx.cases.read(streams, waiting_for=waiting, case_prefix=CASE_PREFIX)
        for stream, recorded in found.items():
            if stream.startswith(CHARGE_PREFIX):
                w.charges[stream.removeprefix(CHARGE_PREFIX)] = _record(recorded)
                continue
            cid = stream.removeprefix(CASE_PREFIX)
            if cid in w.cases:
                continue
            case = w.cases[cid] = _fold(recorded)
            w.versions[cid] = recorded[-1].version if recorded else 0
            _listen(w, cid, case)
            await self.pace()

    def _on_charge(self, w: _Work, env: CloudEvent, charge: ChargePosted) -> None:
        """Record the charge; judge it on its first arrival (its usual amounts from every
        charge before it, fixed from now on); decide the cases waiting for it."""
        stream = charge_stream(charge.charge_id)
        w.requests.append(AppendRequest(stream, None, [to_new_event(env)]))
        w.projected.append((env.id, charge, env.time))
        record = w.charges.setdefault(charge.charge_id, ChargeRecord())
        if record.posted is None:
            w.posted.setdefault(charge.charge_id, env.id)
            own, across = w.usual.assess(charge)
            record.posted = ChargeFacts.from_posted(charge, usual_customer_amount=own, usual_all_amount=across)
            derived: list[EncodedEvent] = []
            if own is not None or across is not None:
                assessed = _charge_assessed(charge_id=charge.charge_id, usual_customer_amount=own,
                                            usual_all_amount=across)  # fmt: skip
                derived.append(self._seal(w, assessed, env.id, stream, 1, charge.customer_id, published=False).stored)
            flag = assess_charge(record.posted, self.policy)
            if flag is not None:
                ev = self._seal(w, flag, env.id, stream, 0, charge.customer_id)
                derived.append(ev.stored)
                w.published.append((ev, flag))
                w.result.flagged += 1
            if derived:
                w.requests.append(AppendRequest(stream, None, derived))
        facts = record.facts()
        assert facts is not None
        for cid in w.waiting.pop(charge.charge_id, []):
            case = w.cases.get(cid)
            if case is not None and case.listens_for_charge:
                self._charge_arrived(w, cid, facts, env.id)

    def _on_refund(self, w: _Work, env: CloudEvent, refund: ChargeRefunded) -> None:
        """Record billing's refund: what remains on the charge is less from now on."""
        w.requests.append(AppendRequest(charge_stream(refund.charge_id), None, [to_new_event(env)]))
        w.projected.append((env.id, refund, env.time))
        w.charges.setdefault(refund.charge_id, ChargeRecord()).refunded(refund)

    def _on_complaint(self, w: _Work, env: CloudEvent, complaint: ComplaintFiled, cid: str) -> None:
        history = w.histories.of(complaint.customer.id)
        cmd = _file_complaint(complaint=complaint, charge=w.charge(complaint.charge_id), history=history)
        self._decide(w, cid, cmd, env.id)
        _listen(w, cid, w.cases.get(cid))

    def _charge_arrived(self, w: _Work, cid: str, charge: ChargeFacts, cause: str) -> None:
        case = w.cases.get(cid)
        if case is None:
            return
        history = w.histories.of(case.customer_id)
        self._decide(w, cid, _charge_arrived(charge=charge, history=history), cause)

    async def _meet_charges(self, tx: Transaction, w: _Work) -> None:
        """Close the race between a complaint and its charge handled by two instances at once.

        Each transaction read the other's half before either committed: the complaint's found
        no charge (so its case waits for it) and the charge's found no waiting case. Both
        look again here, each under a lock on the charge until it commits: of two such
        transactions the second to take it sees what the first committed, and decides the
        case now instead of leaving it waiting for a charge that has already come. (A lock
        per charge, not the append lock: that one is then held only from the append on.)
        """
        # Cases of this batch still waiting for a charge: another transaction may have it.
        waiting = {
            cid: c.charge_id for cid, c in w.cases.items() if c is not None and c.listens_for_charge and c.charge_id
        }
        if not waiting and not w.posted:
            return  # nothing to look at again
        await tx.readmodels.lock_charges([*waiting.values(), *w.posted])
        if waiting:
            streams = await tx.cases.read([charge_stream(c) for c in dict.fromkeys(waiting.values())])
            for cid, charge_id in waiting.items():
                facts = _record(streams[charge_stream(charge_id)]).facts()
                if facts is not None:
                    self._charge_arrived(w, cid, facts, f"charge:{charge_id}")
        # Cases another transaction set waiting for a charge that this batch records.
        found = await tx.readmodels.cases_awaiting(w.posted)
        await self._load(tx, w, [c for ids in found.values() for c in ids])
        for charge_id, case_ids in found.items():
            facts = w.charge(charge_id)
            for cid in case_ids:
                case = w.cases.get(cid)
                if facts is not None and case is not None and case.listens_for_charge:
                    self._charge_arrived(w, cid, facts, w.posted[charge_id])

    def _seal(
        self, w: _Work, data: EventData, cause: str, stream: str, index: int, subject: str, *, published: bool = True
    ) -> Sealed:
        """One of the charge stream's own events, caused by the charge's message."""
        traceparent, tracestate = w.traces.get(cause, w.trace)
        return seal(data, event_id=derived_event_id(cause, stream, index), source=self.source, time=w.now,
                    subject=subject, correlation_id=None, causation_id=cause, published=published,
                    traceparent=traceparent, tracestate=tracestate)  # fmt: skip

    def _decide(self, w: _Work, cid: str, command: AnyCommand, cause: str) -> list[EventData]:
        case = w.cases.get(cid)
        produced = decide_and_record(case, command, w.now, self.policy, self.roster, self.vouchers, w.histories)
        stream = case_stream(cid)
        offset = w.caused.get((cid, cause), 0)
        w.caused[(cid, cause)] = offset + len(produced)
        traceparent, tracestate = w.traces.get(cause, w.trace)
        for i, (data, case) in enumerate(produced):
            customer = case.customer_id
            correlation = case.first_complaint.complaint_id if case.complaints else None
            ev = seal(data, event_id=derived_event_id(cause, stream, offset + i),
                      source=self.source, time=w.now, subject=customer,
                      correlation_id=correlation, causation_id=cause,
                      published=data.TOPIC != INTERNAL, traceparent=traceparent,
                      tracestate=tracestate)  # fmt: skip
            w.pending.setdefault(cid, []).append((data, ev))
            _count(w.result, data, case)
        w.cases[cid] = produced[-1][1] if produced else case
        return [data for data, _ in produced]

    async def _commit(self, tx: Transaction, w: _Work) -> None:
        for cid, items in w.pending.items():
            w.requests.append(AppendRequest(case_stream(cid), w.versions.get(cid, 0), [ev.stored for _, ev in items]))
            for data, ev in items:
                w.projected.append((ev.stored.event_id, data, ev.time))
                if ev.value is not None:
                    w.published.append((ev, data))
        stored = await tx.cases.append_new(w.requests)
        locked = any(r.events for r in w.requests)  # the append took the append lock
        touched = [c for cid, c in w.cases.items() if cid in w.pending and c is not None]
        versions = {cid: w.versions.get(cid, 0) + len(w.pending[cid]) for cid in w.pending}
        projected = [(data, at) for eid, data, at in w.projected if eid not in stored]
        await tx.readmodels.project(projected, touched, versions, self.policy, w.now)
        published = [(ev, data) for ev, data in w.published if ev.stored.event_id not in stored]
        if published:
            messages = [sealed_message(ev, self.settings.topic(data.TOPIC)) for ev, data in published]
            await tx.messages.enqueue(RELAY, messages, locked=locked)

    # ------------------------------------------------------------------ SLA timers

    async def fire_due_timers(self, limit: int = 500) -> int:
        """Fire every timer due by now (locked as read: never twice across instances); how
        many. Raises :class:`RetriesExhausted` when every try lost a race on a case."""
        for _ in range(MAX_RETRIES):
            try:
                async with self.uow.transaction() as tx:
                    w = _Work(now=self.clock())
                    due = await tx.readmodels.due_timers(w.now, limit)
                    if not due:
                        return 0
                    await self._fire(tx, w, due)
                self.on_timers_fired(w.result)  # committed
                return len(due)
            except ConcurrencyConflict as exc:
                log.info("timers.concurrency_retry", stream=exc.stream)
        raise RetriesExhausted("", "firing the due timers kept losing races with another instance")

    async def _fire(self, tx: Transaction, w: _Work, due: list[Any]) -> None:
        """Fire ``due`` (read under lock), in a trace of its own when tracing is on."""
        with tracing.span("fire timers", attributes={"recovery.timers": len(due)}) as fire:
            if fire is not None:
                w.trace = tracing.context_of(fire)
            await self._load(tx, w, [t[0] for t in due])
            # A breach may grant what was claimed: on the charge's ledger as it is now.
            breached = {t[0] for t in due if t[1] in ("sla_breach", "sla_fallback")}
            await self._load(tx, w, (), [c.charge_id for cid, c in w.cases.items()
                                         if cid in breached and c is not None and c.charge_id])  # fmt: skip
            customers = {c.customer_id for c in w.cases.values() if c is not None}
            since = w.now - timedelta(days=self.policy.guardrail_window_days + 1)
            w.histories = Histories(await tx.readmodels.customer_histories(customers, since))
            for cid, kind, due_at in due:
                case = w.cases.get(cid)
                if case is None:
                    continue
                with bound_contextvars(case_id=cid, timer=kind):
                    cmd = FireTimer(kind=kind, due_at=due_at, charge=w.charge(case.charge_id),
                                    history=w.histories.of(case.customer_id))  # fmt: skip
                    self._decide(w, cid, cmd, f"timer:{cid}:{kind}:{due_at.isoformat()}")
            await tx.readmodels.drop_timers(due)
            await self._commit(tx, w)

    async def next_timer_due(self) -> datetime | None:
        return await self.uow.next_timer_due()

    # ------------------------------------------------------------------ people

    async def agent_decide(
        self,
        case_id: str,
        agent_id: str,
        remedies: Sequence[Remedy],
        decline_reason: Reason | None,
        note: str | None = None,
        *,
        role: Literal["agent", "supervisor"] = "supervisor",
        client: Client = IN_PROCESS,
    ) -> DecisionMade | DecisionProposed:
        """A person's decision on an escalated case, on the case's charge's ledger as it is
        now: made, or (an ``agent``'s over the approval limits or on an urgent case) proposed
        for a supervisor's approval. Raises :class:`CaseNotFound`, the domain's
        CommandRejected (RemedyRejected names the remedy's field), or
        :class:`RetriesExhausted` when the case kept changing. ``client``: where the person
        asked from, for the audit record written with the decision (:mod:`.audit`)."""

        def command(charge: ChargeFacts | None) -> AgentDecide:
            return AgentDecide(agent_id=agent_id, role=role, remedies=tuple(remedies), decline_reason=decline_reason,
                               note=note, charge=charge)  # fmt: skip

        with bound_contextvars(case_id=case_id, agent_id=agent_id):
            produced = await self._by_person(case_id, command, f"agent:{agent_id}",
                                             Actor(agent_id, role, client, bool(note)))  # fmt: skip
        return next(d for d in produced if isinstance(d, DecisionMade | DecisionProposed))

    async def approve_decision(self, case_id: str, supervisor_id: str, *, client: Client = IN_PROCESS) -> DecisionMade:
        """A supervisor approves the case's pending decision (not their own): its
        ``DecisionMade``, on the charge's ledger as it is now."""
        with bound_contextvars(case_id=case_id, agent_id=supervisor_id):
            produced = await self._by_person(
                case_id, lambda charge: ApproveDecision(supervisor_id=supervisor_id, charge=charge),
                f"approve:{supervisor_id}", Actor(supervisor_id, "supervisor", client),
            )  # fmt: skip
        return next(d for d in produced if isinstance(d, DecisionMade))

    async def reject_decision(
        self, case_id: str, supervisor_id: str, note: str | None = None, *, client: Client = IN_PROCESS
    ) -> DecisionRejected:
        """A supervisor rejects the case's pending decision: the case waits for another."""
        with bound_contextvars(case_id=case_id, agent_id=supervisor_id):
            produced = await self._by_person(
                case_id, lambda _: RejectDecision(supervisor_id=supervisor_id, note=note), f"reject:{supervisor_id}",
                Actor(supervisor_id, "supervisor", client, bool(note)),
            )  # fmt: skip
        return next(d for d in produced if isinstance(d, DecisionRejected))

    async def assign_case(
        self, case_id: str, person_id: str, assignee: str, *, role: str = "agent", client: Client = IN_PROCESS
    ) -> bool:
        """The escalated case becomes ``assignee``'s (``person_id``'s own: a claim); False when
        it was theirs already."""
        with bound_contextvars(case_id=case_id, agent_id=person_id):
            produced = await self._by_person(
                case_id, lambda _: AssignCase(person_id=person_id, assignee=assignee), f"assign:{person_id}",
                Actor(person_id, role, client),
            )  # fmt: skip
        return bool(produced)

    async def add_note(
        self, case_id: str, person_id: str, note: str, *, role: str = "agent", client: Client = IN_PROCESS
    ) -> None:
        """A person's note on the case, with no decision."""
        with bound_contextvars(case_id=case_id, agent_id=person_id):
            await self._by_person(case_id, lambda _: AddNote(person_id=person_id, note=note), f"note:{person_id}",
                                  Actor(person_id, role, client, True))  # fmt: skip

    async def _by_person(
        self, case_id: str, command: Callable[[ChargeFacts | None], AnyCommand], by: str, actor: Actor
    ) -> list[EventData]:
        """Decide a person's command on the case, made with its charge as read now, in one
        transaction (tried again on fresh state when another writer changed the case), its
        audit record in the same append as its events."""
        for _ in range(MAX_RETRIES):
            try:
                async with self.uow.transaction() as tx:
                    w = _Work(now=self.clock())
                    await self._load(tx, w, [case_id])
                    case = w.cases.get(case_id)
                    if case is None:
                        raise CaseNotFound(case_id)
                    if case.charge_id:
                        await self._load(tx, w, (), [case.charge_id])
                    cause = f"{by}:{case_id}:{w.versions[case_id]}"
                    produced = self._decide(w, case_id, command(w.charge(case.charge_id)), cause)
                    audited = actor.record(w.now, case_id, produced)
                    w.requests.append(audited.request(derived_event_id(cause, audit_stream(w.now), 0)))
                    await self._commit(tx, w)
                    return produced
            except ConcurrencyConflict:
                continue
        raise RetriesExhausted(case_stream(case_id), f"case {case_id} kept changing; try again")


@dataclass(frozen=True)
class Actor:
    """The person behind a decision, approval or rejection, for its audit record."""

    person: str
    role: str
    client: Client
    note: bool = False

    def record(self, at: datetime, case_id: str, produced: Sequence[EventData]) -> AuditRecord:
        """What the person did, as the events ``produced`` say (ids and outcomes only)."""
        action, target = "decision", None
        for d in produced:
            if type(d) is DecisionRejected:
                action, target = "decision.rejected", d.proposed_by
            elif type(d) is DecisionApproved:
                action, target = "decision.approved", d.proposed_by
            elif type(d) is DecisionProposed:
                action, target = "decision.proposed", None
            elif type(d) is CaseAssigned:
                action, target = "case.assigned", d.assignee
            elif type(d) is NoteAdded:
                action = "note.added"
            elif type(d) is DecisionMade and action == "decision":
                action, target = "decision.made", d.outcome
        return AuditRecord(at, self.person, self.role, action, self.client, case_id, target, self.note)


def _count(result: BatchResult, data: EventData, case: Case) -> None:
    kind = type(data)
    if kind is DecisionMade:
        result.decisions += 1
        result.rules[data.policy.rule] = result.rules.get(data.policy.rule, 0) + 1  # type: ignore[attr-defined]
        if data.within_sla:  # type: ignore[attr-defined]
            result.within_sla += 1
        else:
            result.late += 1
        if case.complaints:
            result.filed_to_decided.append((data.decided_at - case.filed_at).total_seconds())  # type: ignore[attr-defined]
    elif data.TYPE == "recovery.case.escalated.v1":
        result.escalations += 1
    elif kind is SlaWarning or kind is SlaBreached:
        # A case not escalated has no priority of its own: it is counted as normal.
        priority = case.escalation.priority if case.escalation is not None else "normal"
        counts = result.sla_warnings if kind is SlaWarning else result.sla_breaches
        counts[priority] = counts.get(priority, 0) + 1


def _message_attributes(env: CloudEvent) -> dict[str, Any]:
    return tracing.messaging("process", "recovery", message__id=env.id, cloudevents__event_type=env.type,
                             cloudevents__event_id=env.id)  # fmt: skip


def _fold(recorded: Sequence[RecordedEvent]) -> Case | None:
    # Stored events were validated before they were appended: load them as a replay does.
    case: Case | None = None
    for r in recorded:
        model = REGISTRY.get(r.event_type)
        if model is not None:
            case = apply(case, loader(model)(r.data))
    return case


def _record(recorded: Sequence[RecordedEvent]) -> ChargeRecord:
    """A charge's record from its stream (validated before it was appended: loaded as a
    replay loads it)."""
    return charge_record(loader(REGISTRY[r.event_type])(r.data) for r in recorded if r.event_type in REGISTRY)


def _listen(w: _Work, cid: str, case: Case | None) -> None:
    """Note ``case`` among those waiting for its charge, if it is."""
    if case is not None and case.listens_for_charge and case.charge_id:
        listeners = w.waiting.setdefault(case.charge_id, [])
        if cid not in listeners:
            listeners.append(cid)


def _customer_of(event: Event[EventData]) -> str:
    """Whose event it is: the customer named in the data, or for a refund (which names only
    its charge) the envelope's subject, the customer id by the contract."""
    data = event.data
    if type(data) is ComplaintFiled:
        return data.customer.id
    if type(data) is ChargePosted:
        return data.customer_id
    return event.envelope.subject or f"charge:{data.charge_id}"  # type: ignore[attr-defined]
