"""The in-memory twins of the recovery application's ports (``services/recovery/ports.py``),
for unit tests: the same answers as the PostgreSQL adapters, no server.

One :class:`MemoryUnitOfWork` holds the whole state (the event store's twin, the read
models, the inbox and the outbox). Its transactions run one at a time, and one whose block
raises leaves the state as it found it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from services.common.contract.events import ChargePosted, ChargeRefunded, DecisionMade, EventData
from services.common.eventstore import AppendRequest, ConcurrencyError, RecordedEvent
from services.common.eventstore.memory import MemoryEventStore
from services.common.outbox import OutboxMessage
from services.recovery.domain.anomaly import CROSS_CUSTOMER_KINDS
from services.recovery.domain.case import Case
from services.recovery.domain.facts import NO_HISTORY, CustomerHistory
from services.recovery.domain.guardrail import is_concession
from services.recovery.domain.policy import Policy
from services.recovery.domain.sla import pending_timers
from services.recovery.domain.usual import Usual, Window
from services.recovery.errors import ConcurrencyConflict
from services.recovery.ports import DueTimer


@dataclass
class ChargeRow:
    customer_id: str
    kind: str
    currency: str
    amount: Decimal
    refunded: Decimal = Decimal(0)


@dataclass
class ReadModelState:
    """The read models' rows (as rm_* hold them)."""

    charges: dict[str, ChargeRow] = field(default_factory=dict)
    amounts: dict[tuple[str, str], Counter[Decimal]] = field(default_factory=dict)
    early_refunds: dict[str, Decimal] = field(default_factory=dict)
    concessions: set[tuple[str, str, datetime]] = field(default_factory=set)
    owners: dict[str, str] = field(default_factory=dict)
    cases: dict[str, tuple[Case, int]] = field(default_factory=dict)
    timers: dict[tuple[str, str], datetime] = field(default_factory=dict)
    awaiting: set[tuple[str, str]] = field(default_factory=set)


class MemoryCaseStore:
    def __init__(self, store: MemoryEventStore, state: ReadModelState) -> None:
        self.store = store
        self.state = state

    async def read(
        self, stream_ids: Sequence[str], *, waiting_for: Sequence[str] = (), case_prefix: str = ""
    ) -> dict[str, list[RecordedEvent]]:
        wanted = set(waiting_for)
        waiting = sorted({case_prefix + case for charge, case in self.state.awaiting if charge in wanted})
        found = await self.store.read_streams([*stream_ids, *waiting])
        return {s: events for s, events in found.items() if events or s in stream_ids}

    async def append_new(self, requests: Sequence[AppendRequest]) -> set[str]:
        held = self.store.held([e.event_id for r in requests for e in r.events])
        try:
            self.store.append_now(requests)
        except ConcurrencyError as exc:
            raise ConcurrencyConflict(exc.stream_id, str(exc)) from exc
        return held


class MemoryReadModels:
    def __init__(self, state: ReadModelState) -> None:
        self.state = state

    async def customer_histories(self, customer_ids: Iterable[str], since: datetime) -> dict[str, CustomerHistory]:
        out: dict[str, CustomerHistory] = {}
        for customer in set(customer_ids):
            times = sorted(at for c, _, at in self.state.concessions if c == customer and at >= since)
            owner = self.state.owners.get(customer)
            known = times or owner is not None
            out[customer] = (
                CustomerHistory(concession_times=tuple(times), previous_owner_id=owner) if known else NO_HISTORY
            )
        return out

    async def usual_amounts(self, charges: Sequence[ChargePosted]) -> Usual:
        usual = Usual()
        for c in charges:
            key = (c.customer_id, c.kind, c.currency)
            usual.own[key] = [
                r.amount for r in self.state.charges.values() if (r.customer_id, r.kind, r.currency) == key
            ]
            if c.kind in CROSS_CUSTOMER_KINDS and (c.kind, c.currency) not in usual.across:
                counts = self.state.amounts.get((c.kind, c.currency), Counter())
                rows: list[tuple[Decimal, int, int]] = []
                upto = 0
                for amount in sorted(counts):
                    upto += counts[amount]
                    rows.append((amount, counts[amount], upto))
                usual.across[(c.kind, c.currency)] = Window(upto, rows)
        return usual

    async def lock_charges(self, charge_ids: Iterable[str]) -> None:
        """Nothing to lock: the twin's transactions run one at a time."""

    async def cases_awaiting(self, charge_ids: Iterable[str]) -> dict[str, list[str]]:
        wanted = set(charge_ids)
        out: dict[str, list[str]] = {}
        for charge, case in sorted(self.state.awaiting):
            if charge in wanted:
                out.setdefault(charge, []).append(case)
        return out

    async def project(
        self,
        events: Sequence[tuple[EventData, datetime]],
        cases: Iterable[Case],
        versions: dict[str, int],
        policy: Policy,
        now: datetime,
    ) -> None:
        s = self.state
        refunds: dict[str, Decimal] = {}
        for data, _at in events:
            if type(data) is ChargePosted:
                early = s.early_refunds.pop(data.charge_id, Decimal(0))
                if data.charge_id not in s.charges:
                    s.charges[data.charge_id] = ChargeRow(data.customer_id, data.kind, data.currency, data.amount,
                                                          early)  # fmt: skip
                    s.amounts.setdefault((data.kind, data.currency), Counter())[data.amount] += 1
            elif type(data) is ChargeRefunded:
                refunds[data.charge_id] = refunds.get(data.charge_id, Decimal(0)) + data.amount
            elif type(data) is DecisionMade and is_concession(data):
                s.concessions.add((data.customer.id, data.case_id, data.decided_at))
        for charge_id, amount in refunds.items():
            row = s.charges.get(charge_id)
            if row is not None:
                row.refunded += amount
            else:
                s.early_refunds[charge_id] = s.early_refunds.get(charge_id, Decimal(0)) + amount
        for c in cases:
            s.cases[c.case_id] = (c, versions[c.case_id])
            s.owners[c.customer_id] = c.owner.id
            for key in [k for k in s.timers if k[0] == c.case_id]:
                del s.timers[key]
            for t in pending_timers(c, policy):
                s.timers[(c.case_id, t.kind)] = t.due_at
            s.awaiting = {w for w in s.awaiting if w[1] != c.case_id}
            if c.listens_for_charge and c.charge_id:
                s.awaiting.add((c.charge_id, c.case_id))

    async def due_timers(self, now: datetime, limit: int) -> list[DueTimer]:
        due = sorted((at, case, kind) for (case, kind), at in self.state.timers.items() if at <= now)
        return [(case, kind, at) for at, case, kind in due[:limit]]

    async def drop_timers(self, timers: Sequence[DueTimer]) -> None:
        for case, kind, _ in timers:
            self.state.timers.pop((case, kind), None)


class MemoryMessages:
    def __init__(self, inbox: set[tuple[str, str]], outbox: list[tuple[str, OutboxMessage]]) -> None:
        self.inbox = inbox
        self.outbox = outbox

    async def claim_inbox(self, consumer: str, message_ids: Sequence[str]) -> set[str]:
        fresh = {m for m in message_ids if (consumer, m) not in self.inbox}
        self.inbox.update((consumer, m) for m in fresh)
        return fresh

    async def enqueue(self, relay: str, messages: Sequence[OutboxMessage], *, locked: bool = False) -> None:
        self.outbox.extend((relay, m) for m in messages)


@dataclass(frozen=True, slots=True)
class MemoryTransaction:
    cases: MemoryCaseStore
    readmodels: MemoryReadModels
    messages: MemoryMessages


class MemoryUnitOfWork:
    """The whole state in memory: ``store`` (the events), ``state`` (the read models),
    ``inbox`` ((consumer, message id)) and ``outbox`` ((relay, message), in order)."""

    def __init__(self) -> None:
        self.store = MemoryEventStore()
        self.state = ReadModelState()
        self.inbox: set[tuple[str, str]] = set()
        self.outbox: list[tuple[str, OutboxMessage]] = []
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[MemoryTransaction]:
        async with self._lock:
            mark = self.store.snapshot()
            saved: tuple[Any, ...] = (copy.deepcopy(self.state), set(self.inbox), len(self.outbox))
            try:
                yield MemoryTransaction(
                    MemoryCaseStore(self.store, self.state),
                    MemoryReadModels(self.state),
                    MemoryMessages(self.inbox, self.outbox),
                )
            except BaseException:
                self.store.restore(mark)
                self.state = saved[0]
                self.inbox.clear()
                self.inbox.update(saved[1])
                del self.outbox[saved[2] :]
                raise

    batch = transaction

    async def next_timer_due(self) -> datetime | None:
        return min(self.state.timers.values(), default=None)
