"""The recovery application: load state, decide, append, project, queue — one transaction
per batch of Kafka records (or of due timers, or of one agent's decision).

A batch that loses a race with another instance (``ConcurrencyError`` on a case stream, as
during a rebalance) is rolled back whole and handled again on fresh state; event ids are
derived from the message that caused them, so the same message can never record two
decisions.
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
from services.common.eventstore import AppendRequest, ConcurrencyError, RecordedEvent
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
from services.recovery.domain.commands import AgentDecide, ChargeArrived, FileComplaint, FireTimer
from services.recovery.domain.decide import decide
from services.recovery.domain.events import INTERNAL, INTERNAL_EVENT_TYPES
from services.recovery.domain.facts import NO_HISTORY, ChargeFacts, CustomerHistory
from services.recovery.domain.guardrail import is_concession
from services.recovery.domain.policy import Policy
from services.recovery.domain.roster import Roster
from services.recovery.replay.trusted import loader

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


def case_stream(case_id: str) -> str:
    return f"case-{case_id}"


def charge_stream(charge_id: str) -> str:
    return f"charge-{charge_id}"


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
    requests: list[AppendRequest] = field(default_factory=list)
    # What the read models take from this batch's events, by event id: an event the store
    # already holds (a message handled before and out of the inbox since) is left out.
    projected: list[tuple[str, EventData, datetime]] = field(default_factory=list)
    published: list[tuple[Sealed, EventData]] = field(default_factory=list)
    histories: dict[str, CustomerHistory] = field(default_factory=dict)
    charges: dict[str, ChargeFacts] = field(default_factory=dict)
    # The charges this batch posts: their facts and the id of the message that brought each.
    posted: dict[str, tuple[ChargeFacts, str]] = field(default_factory=dict)
    result: BatchResult = field(default_factory=BatchResult)
    pace: _Pacer = field(default_factory=_Pacer)


class RecoveryService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: CommonSettings,
        policy: Policy,
        roster: Roster,
        clock: Clock,
        source: str = "recovery-service",
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.policy = policy
        self.roster = roster
        self.clock = clock
        self.source = source

    # ------------------------------------------------------------------ Kafka batches

    async def handle_records(
        self, records: Sequence[InboundRecord], flight: InFlight | None = None, before: InFlight | None = None
    ) -> BatchResult:
        """Handle a batch in one transaction. With a pipeline, ``flight`` is this batch's
        and ``before`` the one still in flight ahead of it: if the two share a customer,
        this one reads nothing until that one is over."""
        good, dead = decode_batch(records, ACCEPTED, source=self.source, now=self.clock())
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
        # Exact types (decoded from the registry): isinstance on pydantic goes through ABCMeta.
        charges = [e for e in todo if type(e.data) is ChargePosted or type(e.data) is ChargeRefunded]
        complaints = [e for e in todo if type(e.data) is ComplaintFiled]
        await self._load_context(conn, w, charges, complaints)
        await self._on_charges(conn, w, charges)
        for e in complaints:
            assert type(e.data) is ComplaintFiled
            self._on_complaint(w, e.envelope, e.data)
            await w.pace()
        await self._meet_charges(conn, w)
        await self._commit(conn, w)
        return w.result

    async def _meet_charges(self, conn: asyncpg.Connection, w: _Work) -> None:
        """Close the race between a complaint and its charge handled by two instances at once.

        Each transaction read the other's half before either committed: the complaint's found
        no charge (so its case waits for it) and the charge's found no waiting case. Both
        look again here, each under a lock on the charge until it commits: of two such
        transactions the second to take it sees what the first committed, and decides the
        case now instead of leaving it waiting for a charge that has already come. (A lock
        per charge, not the append lock: that one is then held only from the append on.)
        """
        # Cases of this batch waiting for a charge that another transaction has recorded.
        waiting = {
            cid: c.charge_id for cid, c in w.cases.items() if c is not None and c.listens_for_charge and c.charge_id
        }
        if not waiting and not w.posted:
            return  # nothing to look at again
        await readmodels.lock_charges(conn, [*waiting.values(), *w.posted])
        posted = await readmodels.posted_charges(conn, waiting.values())
        facts = await readmodels.charge_facts(conn, list(posted.values()))
        for cid, charge_id in waiting.items():
            if charge_id in facts:
                self._charge_arrived(w, cid, facts[charge_id], f"charge:{charge_id}")
        # Cases another transaction set waiting for a charge that this batch records.
        found = await readmodels.cases_awaiting(conn, w.posted)
        await self._load_cases(conn, w, [c for ids in found.values() for c in ids])
        for charge_id, case_ids in found.items():
            for cid in case_ids:
                case = w.cases.get(cid)
                if case is not None and case.listens_for_charge:
                    self._charge_arrived(w, cid, *w.posted[charge_id])

    def _charge_arrived(self, w: _Work, cid: str, charge: ChargeFacts, cause: str) -> None:
        case = w.cases.get(cid)
        if case is None:
            return
        history = w.histories.get(case.customer_id) or NO_HISTORY
        self._decide(w, cid, _charge_arrived(charge=charge, history=history), cause)

    async def _load_context(
        self,
        conn: asyncpg.Connection,
        w: _Work,
        charges: list[Event[EventData]],
        complaints: list[Event[EventData]],
    ) -> None:
        customers = {e.data.customer.id for e in complaints if type(e.data) is ComplaintFiled}
        customers |= {e.data.customer_id for e in charges if type(e.data) is ChargePosted}
        since = w.now - timedelta(days=self.policy.guardrail_window_days + 1)
        w.histories = await readmodels.customer_histories(conn, customers, since)
        filed = [e.data for e in complaints if type(e.data) is ComplaintFiled]
        # Charges the complaints name: stored ones (read with the cases, one round trip) and
        # those arriving in this very batch.
        named = {c.charge_id for c in filed if c.charge_id}
        known = await self._load_cases(conn, w, [case_id_for(c) for c in filed], named)
        for e in charges:
            if type(e.data) is ChargePosted and e.data.charge_id in named:
                known.setdefault(e.data.charge_id, e.data)
        w.charges = await readmodels.charge_facts(conn, list(known.values()))

    async def _load_cases(
        self, conn: asyncpg.Connection, w: _Work, case_ids: list[str], charge_ids: Iterable[str] = ()
    ) -> dict[str, ChargePosted]:
        """Fold the cases not loaded yet into ``w``; the same query reads the streams of
        ``charge_ids``, whose posted charges (those stored) it returns."""
        wanted = [c for c in dict.fromkeys(case_ids) if c not in w.cases]
        charges = [charge_stream(c) for c in dict.fromkeys(charge_ids)]
        streams = await read_streams_on(conn, [case_stream(c) for c in wanted] + charges)
        for cid in wanted:
            recorded = streams[case_stream(cid)]
            w.cases[cid] = _fold(recorded)
            w.versions[cid] = recorded[-1].version if recorded else 0
            await w.pace()
        posted = (_load_posted(r.data) for s in charges for r in streams[s] if r.event_type == ChargePosted.TYPE)
        return {c.charge_id: c for c in posted}

    async def _on_charges(self, conn: asyncpg.Connection, w: _Work, charges: list[Event[EventData]]) -> None:
        if not charges:
            return
        posted = [e for e in charges if type(e.data) is ChargePosted]
        facts = await readmodels.charge_facts(conn, [e.data for e in posted])  # type: ignore[misc]
        w.posted = {e.data.charge_id: (facts[e.data.charge_id], e.envelope.id) for e in posted}  # type: ignore[attr-defined]
        for e in charges:
            stream = charge_stream(e.data.charge_id)  # type: ignore[attr-defined]
            w.requests.append(AppendRequest(stream, None, [to_new_event(e.envelope)]))
            w.projected.append((e.envelope.id, e.data, e.envelope.time))
            if type(e.data) is ChargePosted:
                flag = assess_charge(facts[e.data.charge_id], self.policy)
                if flag is not None:
                    ev = seal(flag, event_id=derived_event_id(e.envelope.id, stream, 0),
                              source=self.source, time=w.now, subject=e.data.customer_id,
                              correlation_id=None, causation_id=e.envelope.id)  # fmt: skip
                    w.requests.append(AppendRequest(stream, None, [ev.stored]))
                    w.published.append((ev, flag))
                    w.result.flagged += 1
            await w.pace()
        waiting = await readmodels.cases_awaiting(conn, w.posted)
        await self._load_cases(conn, w, [c for ids in waiting.values() for c in ids])
        for charge_id, case_ids in waiting.items():
            for cid in case_ids:
                self._charge_arrived(w, cid, *w.posted[charge_id])
                await w.pace()

    def _on_complaint(self, w: _Work, env: CloudEvent, complaint: ComplaintFiled) -> None:
        cid = case_id_for(complaint)
        charge = w.charges.get(complaint.charge_id) if complaint.charge_id else None
        history = w.histories.get(complaint.customer.id) or NO_HISTORY
        cmd = _file_complaint(complaint=complaint, charge=charge, history=history)
        self._decide(w, cid, cmd, env.id)

    def _decide(self, w: _Work, cid: str, command: object, cause: str) -> list[EventData]:
        case = w.cases.get(cid)
        produced = decide(case, command, w.now, self.policy, self.roster)  # type: ignore[arg-type]
        stream = case_stream(cid)
        offset = len(w.pending.get(cid, []))
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
                    await self._load_cases(conn, w, [r[0] for r in rows])
                    customers = {c.customer_id for c in w.cases.values() if c is not None}
                    since = w.now - timedelta(days=self.policy.guardrail_window_days + 1)
                    w.histories = await readmodels.customer_histories(conn, customers, since)
                    for cid, kind, due_at in rows:
                        case = w.cases.get(cid)
                        if case is None:
                            continue
                        cmd = FireTimer(kind=kind, due_at=due_at,
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
        """A person's decision on an escalated case (raises the domain's CommandRejected)."""
        for _ in range(MAX_RETRIES):
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    w = _Work(now=self.clock())
                    await self._load_cases(conn, w, [case_id])
                    case = w.cases.get(case_id)
                    if case is None:
                        raise LookupError(f"no case {case_id}")
                    cmd = AgentDecide(agent_id=agent_id, remedies=tuple(remedies),
                                      decline_reason=decline_reason, note=note)  # fmt: skip
                    cause = f"agent:{agent_id}:{case_id}:{w.versions[case_id]}"
                    produced = self._decide(w, case_id, cmd, cause)
                    await self._commit(conn, w)
                    return next(d for d in produced if isinstance(d, DecisionMade))
            except ConcurrencyError:
                continue
        raise RuntimeError(f"case {case_id} kept changing; try again")


_load_posted = loader(ChargePosted)  # validated before it was appended: loaded as a replay loads it


def _fold(recorded: Sequence[RecordedEvent]) -> Case | None:
    # Stored events were validated before they were appended: load them as a replay does.
    case: Case | None = None
    for r in recorded:
        model = REGISTRY.get(r.event_type)
        if model is not None:
            case = apply(case, loader(model)(r.data))
    return case


def _customer_of(event: Event[EventData]) -> str:
    """Whose event it is: the customer named in the data, or for a refund (which names only
    its charge) the envelope's subject, the customer id by the contract."""
    data = event.data
    if type(data) is ComplaintFiled:
        return data.customer.id
    if type(data) is ChargePosted:
        return data.customer_id
    return event.envelope.subject or f"charge:{data.charge_id}"  # type: ignore[attr-defined]
