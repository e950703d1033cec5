"""The recovery application: load state, decide, append, project, queue — one transaction
per batch of Kafka records (or of due timers, or of one agent's decision).

A batch reads what it needs up front, in a few round trips whatever its size (the inbox,
the streams of its cases and charges with those of the cases waiting for its charges, the
customers' histories, what its new charges' usual amounts are computed from), then handles
its records one by one in the order they came (the consumer's order, which keeps each
partition's), each seeing what the records before it did: a charge earlier in the batch,
its refunds, a case it opened. So the same records give the same events whether they come
in one batch or in many (each event's id is derived from the message that caused it, its
case and its place among that message's events on the case), and a redelivery records
nothing twice.

A batch that loses a race with another instance (``ConcurrencyError`` on a case stream, as
during a rebalance) is rolled back whole and handled again on fresh state.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import asyncpg

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
)
from services.common.db import batch_transaction
from services.common.eventstore import AppendRequest, ConcurrencyError, EncodedEvent, RecordedEvent
from services.common.eventstore.postgres import append_new, read_streams_on
from services.common.failures import Transient
from services.common.kafka import decode_batch
from services.common.logging import get_logger
from services.common.outbox import claim_inbox, enqueue, outbox_message, sealed_message
from services.common.records import InboundRecord, Sealed, derived_event_id, seal, to_new_event
from services.common.settings import CommonSettings
from services.recovery.adapters import readmodels
from services.recovery.domain.anomaly import assess_charge
from services.recovery.domain.case import Case, apply, case_id_for
from services.recovery.domain.charge_record import ChargeRecord, charge_record
from services.recovery.domain.commands import AgentDecide, ChargeArrived, FileComplaint, FireTimer
from services.recovery.domain.decide import decide
from services.recovery.domain.errors import ConfigError
from services.recovery.domain.events import INTERNAL, INTERNAL_EVENT_TYPES, ChargeAssessed
from services.recovery.domain.facts import NO_HISTORY, ChargeFacts, CustomerHistory
from services.recovery.domain.guardrail import is_concession
from services.recovery.domain.policy import Policy
from services.recovery.domain.remedies import VoucherCodes, VoucherKey
from services.recovery.domain.roster import Roster
from services.recovery.domain.usual import Usual
from services.recovery.replay.trusted import loader
from services.recovery.settings import RecoverySettings

if TYPE_CHECKING:
    from services.common.pipeline import InFlight

log = get_logger(__name__)

CONSUMER = "recovery-service"
RELAY = "recovery"
ACCEPTED = frozenset({ChargePosted.TYPE, ChargeRefunded.TYPE, ComplaintFiled.TYPE})
REGISTRY: dict[str, type[EventData]] = {**EVENT_TYPES, **{m.TYPE: m for m in INTERNAL_EVENT_TYPES}}
MAX_RETRIES = 8
# Work between two looks at the event loop while deciding (see _Pacer).
SLICE_S = 0.001
# Commands and histories made of values validated already (decoded events, read models).
_file_complaint = constructor(FileComplaint)
_charge_arrived = constructor(ChargeArrived)
_history = constructor(CustomerHistory)
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


class _Pacer:
    """Hands the event loop back every ``SLICE_S`` or so of deciding.

    With a pipeline, the batch ahead holds the append lock while this one decides, and
    every step it takes (rows to encode, a statement's answer to read) waits for the event
    loop: a batch deciding for 20 ms at a stretch would hold the lock's whole queue up.
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last = time.perf_counter()

    async def __call__(self) -> None:
        now = time.perf_counter()
        if now - self._last >= SLICE_S:
            await asyncio.sleep(0)
            self._last = time.perf_counter()


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
    histories: dict[str, CustomerHistory] = field(default_factory=dict)
    # Every charge this transaction has read or been sent, as recorded so far.
    charges: dict[str, ChargeRecord] = field(default_factory=dict)
    # The cases listening for each charge (waiting for it and not decided).
    waiting: dict[str, list[str]] = field(default_factory=dict)
    # The charges this batch posts first, and the id of the message that brought each.
    posted: dict[str, str] = field(default_factory=dict)
    usual: Usual = field(default_factory=Usual)
    result: BatchResult = field(default_factory=BatchResult)
    pace: _Pacer = field(default_factory=_Pacer)

    def charge(self, charge_id: str | None) -> ChargeFacts | None:
        """The charge with its ledger as this transaction knows it now (None: not posted)."""
        record = self.charges.get(charge_id) if charge_id else None
        return record.facts() if record is not None else None


class RecoveryService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: CommonSettings,
        policy: Policy,
        roster: Roster,
        clock: Clock,
        source: str = "recovery-service",
        *,
        vouchers: VoucherCodes | None = None,
    ) -> None:
        """``vouchers``: the voucher codes; by default :func:`voucher_key` of ``settings``."""
        self.pool = pool
        self.settings = settings
        self.policy = policy
        self.roster = roster
        self.clock = clock
        self.source = source
        self.vouchers = vouchers if vouchers is not None else voucher_key(settings)
        self.dead_letter_limits = settings.dead_letter_limits()

    # ------------------------------------------------------------------ Kafka batches

    async def handle_records(
        self, records: Sequence[InboundRecord], flight: InFlight | None = None, before: InFlight | None = None
    ) -> BatchResult:
        """Handle a batch in one transaction. With a pipeline, ``flight`` is this batch's
        and ``before`` the one still in flight ahead of it: if the two share a customer,
        this one reads nothing until that one is over."""
        good, dead = decode_batch(
            records, ACCEPTED, source=self.source, now=self.clock(), limits=self.dead_letter_limits
        )
        if flight is not None:
            flight.keys = frozenset(_customer_of(e) for e in good)
            if before is not None:
                await before.wait_if_shared(flight.keys)
        for attempt in range(MAX_RETRIES):
            try:
                async with batch_transaction(self.pool) as conn:
                    result = await self._handle(conn, good, self.clock())
                    if dead:
                        topic = self.settings.topic("dlq")
                        await enqueue(conn, RELAY, [outbox_message(d, topic) for d in dead])
                result.dead_letters = len(dead)
                return result
            except ConcurrencyError as exc:
                log.info("batch.concurrency_retry", attempt=attempt, stream=exc.stream_id)
        raise Transient("batch kept losing races with another instance; will be redelivered")

    async def _handle(self, conn: asyncpg.Connection, events: list[Event[EventData]], now: datetime) -> BatchResult:
        w = _Work(now=now)
        fresh = await claim_inbox(conn, CONSUMER, [e.envelope.id for e in events])
        todo: list[Event[EventData]] = []
        for e in events:
            if e.envelope.id in fresh:
                fresh.discard(e.envelope.id)  # a repeat inside the batch counts once
                todo.append(e)
        w.result.duplicates = len(events) - len(todo)
        w.result.accepted = len(todo)
        await self._load_context(conn, w, todo)
        # In the order they came; exact types (decoded from the registry): isinstance on
        # pydantic goes through ABCMeta.
        for e in todo:
            kind = type(e.data)
            if kind is ComplaintFiled:
                self._on_complaint(w, e.envelope, e.data)  # type: ignore[arg-type]
            elif kind is ChargePosted:
                self._on_charge(w, e.envelope, e.data)  # type: ignore[arg-type]
            else:
                self._on_refund(w, e.envelope, e.data)  # type: ignore[arg-type]
            await w.pace()
        await self._meet_charges(conn, w)
        await self._commit(conn, w)
        return w.result

    async def _load_context(self, conn: asyncpg.Connection, w: _Work, todo: list[Event[EventData]]) -> None:
        """Everything the batch's records read, before the first is handled: their cases,
        the charges they name or post (with those charges' records) and the cases waiting
        for those, the customers' histories, and the usual amounts' inputs."""
        filed = [e.data for e in todo if type(e.data) is ComplaintFiled]
        new = [e.data for e in todo if type(e.data) is ChargePosted]
        named = [c.charge_id for c in filed if c.charge_id]
        posted = [c.charge_id for c in new]
        await self._load(conn, w, [case_id_for(c) for c in filed], [*named, *posted], waiting_for=posted)
        customers = {c.customer.id for c in filed}
        customers |= {c.customer_id for c in new}
        customers |= {c.customer_id for c in w.cases.values() if c is not None}
        since = w.now - timedelta(days=self.policy.guardrail_window_days + 1)
        w.histories = await readmodels.customer_histories(conn, customers, since)
        unrecorded = [c for c in new if w.charges[c.charge_id].posted is None]
        w.usual = await readmodels.usual_amounts(conn, unrecorded)

    async def _load(
        self,
        conn: asyncpg.Connection,
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
        if waiting:
            found = await readmodels.read_streams_and_waiting(conn, streams, waiting, CASE_PREFIX)
        else:
            found = await read_streams_on(conn, streams)
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
            await w.pace()

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

    def _on_complaint(self, w: _Work, env: CloudEvent, complaint: ComplaintFiled) -> None:
        cid = case_id_for(complaint)
        history = w.histories.get(complaint.customer.id) or NO_HISTORY
        cmd = _file_complaint(complaint=complaint, charge=w.charge(complaint.charge_id), history=history)
        self._decide(w, cid, cmd, env.id)
        _listen(w, cid, w.cases.get(cid))

    def _charge_arrived(self, w: _Work, cid: str, charge: ChargeFacts, cause: str) -> None:
        case = w.cases.get(cid)
        if case is None:
            return
        history = w.histories.get(case.customer_id) or NO_HISTORY
        self._decide(w, cid, _charge_arrived(charge=charge, history=history), cause)

    async def _meet_charges(self, conn: asyncpg.Connection, w: _Work) -> None:
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
        await readmodels.lock_charges(conn, [*waiting.values(), *w.posted])
        if waiting:
            streams = await read_streams_on(conn, [charge_stream(c) for c in dict.fromkeys(waiting.values())])
            for cid, charge_id in waiting.items():
                facts = _record(streams[charge_stream(charge_id)]).facts()
                if facts is not None:
                    self._charge_arrived(w, cid, facts, f"charge:{charge_id}")
        # Cases another transaction set waiting for a charge that this batch records.
        found = await readmodels.cases_awaiting(conn, w.posted)
        await self._load(conn, w, [c for ids in found.values() for c in ids])
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
        return seal(data, event_id=derived_event_id(cause, stream, index), source=self.source, time=w.now,
                    subject=subject, correlation_id=None, causation_id=cause, published=published)  # fmt: skip

    def _decide(self, w: _Work, cid: str, command: object, cause: str) -> list[EventData]:
        case = w.cases.get(cid)
        produced = decide(case, command, w.now, self.policy, self.roster, self.vouchers)  # type: ignore[arg-type]
        stream = case_stream(cid)
        offset = w.caused.get((cid, cause), 0)
        w.caused[(cid, cause)] = offset + len(produced)
        for i, data in enumerate(produced):
            case = apply(case, data)
            customer = case.customer_id
            correlation = case.first_complaint.complaint_id if case.complaints else None
            ev = seal(data, event_id=derived_event_id(cause, stream, offset + i),
                      source=self.source, time=w.now, subject=customer,
                      correlation_id=correlation, causation_id=cause,
                      published=data.TOPIC != INTERNAL)  # fmt: skip
            w.pending.setdefault(cid, []).append((data, ev))
            self._count(w, data)
        w.cases[cid] = case
        return produced

    def _count(self, w: _Work, data: EventData) -> None:
        if type(data) is DecisionMade:
            w.result.decisions += 1
            w.result.rules[data.policy.rule] = w.result.rules.get(data.policy.rule, 0) + 1
            if data.within_sla:
                w.result.within_sla += 1
            else:
                w.result.late += 1
            if data.decided_by == "policy" and is_concession(data):
                hist = w.histories.get(data.customer.id) or NO_HISTORY
                w.histories[data.customer.id] = _history(
                    concession_times=(*hist.concession_times, data.decided_at),
                    previous_owner_id=hist.previous_owner_id,
                )
        elif data.TYPE == "recovery.case.escalated.v1":
            w.result.escalations += 1
        elif data.TYPE == "recovery.case.opened.v1":
            hist = w.histories.get(data.customer_id) or NO_HISTORY  # type: ignore[attr-defined]
            w.histories[data.customer_id] = _history(  # type: ignore[attr-defined]
                concession_times=hist.concession_times,
                previous_owner_id=data.case_owner.id,  # type: ignore[attr-defined]
            )

    async def _commit(self, conn: asyncpg.Connection, w: _Work) -> None:
        for cid, items in w.pending.items():
            w.requests.append(AppendRequest(case_stream(cid), w.versions.get(cid, 0), [ev.stored for _, ev in items]))
            for data, ev in items:
                w.projected.append((ev.stored.event_id, data, ev.time))
                if ev.value is not None:
                    w.published.append((ev, data))
        stored = await append_new(conn, w.requests)
        locked = any(r.events for r in w.requests)  # append_new took the append lock
        touched = [c for cid, c in w.cases.items() if cid in w.pending and c is not None]
        versions = {cid: w.versions.get(cid, 0) + len(w.pending[cid]) for cid in w.pending}
        projected = [(data, at) for eid, data, at in w.projected if eid not in stored]
        await readmodels.project(conn, projected, touched, versions, self.policy, w.now)
        published = [(ev, data) for ev, data in w.published if ev.stored.event_id not in stored]
        if published:
            messages = [sealed_message(ev, self.settings.topic(data.TOPIC)) for ev, data in published]
            await enqueue(conn, RELAY, messages, locked=locked)

    # ------------------------------------------------------------------ SLA timers

    async def fire_due_timers(self, limit: int = 500) -> int:
        """Fire every timer due by now (FOR UPDATE SKIP LOCKED: never twice across instances)."""
        for _ in range(MAX_RETRIES):
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    w = _Work(now=self.clock())
                    rows = await conn.fetch(
                        "SELECT case_id, kind, due_at FROM rm_timers WHERE due_at <= $1"
                        " ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED",
                        w.now, limit,
                    )  # fmt: skip
                    if not rows:
                        return 0
                    await self._load(conn, w, [r[0] for r in rows])
                    # A breach may grant what was claimed: on the charge's ledger as it is now.
                    breached = {r[0] for r in rows if r[1] == "sla_breach"}
                    await self._load(conn, w, (), [c.charge_id for cid, c in w.cases.items()
                                                   if cid in breached and c is not None and c.charge_id])  # fmt: skip
                    customers = {c.customer_id for c in w.cases.values() if c is not None}
                    since = w.now - timedelta(days=self.policy.guardrail_window_days + 1)
                    w.histories = await readmodels.customer_histories(conn, customers, since)
                    for cid, kind, due_at in rows:
                        case = w.cases.get(cid)
                        if case is None:
                            continue
                        cmd = FireTimer(kind=kind, due_at=due_at, charge=w.charge(case.charge_id),
                                        history=w.histories.get(case.customer_id) or NO_HISTORY)  # fmt: skip
                        self._decide(w, cid, cmd, f"timer:{cid}:{kind}:{due_at.isoformat()}")
                    await conn.execute(
                        "DELETE FROM rm_timers WHERE (case_id, kind) IN"
                        " (SELECT * FROM unnest($1::text[], $2::text[]))",
                        [r[0] for r in rows], [r[1] for r in rows],
                    )  # fmt: skip
                    await self._commit(conn, w)
                    return len(rows)
            except ConcurrencyError:
                continue
        return 0

    async def next_timer_due(self) -> datetime | None:
        due: datetime | None = await self.pool.fetchval("SELECT min(due_at) FROM rm_timers")
        return due

    # ------------------------------------------------------------------ people

    async def agent_decide(
        self,
        case_id: str,
        agent_id: str,
        remedies: Sequence[Remedy],
        decline_reason: Reason | None,
        note: str | None = None,
    ) -> DecisionMade:
        """A person's decision on an escalated case, on the case's charge's ledger as it is
        now (raises the domain's CommandRejected; RemedyRejected names the remedy's field)."""
        for _ in range(MAX_RETRIES):
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    w = _Work(now=self.clock())
                    await self._load(conn, w, [case_id])
                    case = w.cases.get(case_id)
                    if case is None:
                        raise LookupError(f"no case {case_id}")
                    if case.charge_id:
                        await self._load(conn, w, (), [case.charge_id])
                    cmd = AgentDecide(agent_id=agent_id, remedies=tuple(remedies), decline_reason=decline_reason,
                                      note=note, charge=w.charge(case.charge_id))  # fmt: skip
                    cause = f"agent:{agent_id}:{case_id}:{w.versions[case_id]}"
                    produced = self._decide(w, case_id, cmd, cause)
                    await self._commit(conn, w)
                    return next(d for d in produced if isinstance(d, DecisionMade))
            except ConcurrencyError:
                continue
        raise RuntimeError(f"case {case_id} kept changing; try again")


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
