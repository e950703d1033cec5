"""What the recovery application needs from the world around it, as ports.

A :class:`UnitOfWork` opens a :class:`Transaction`: the case and charge streams
(:class:`CaseStore`, the event store), the read models (:class:`ReadModels`) and the inbox
and outbox (:class:`Messages`), all in one atomic transaction that commits when its block
ends and rolls back whole when the block raises. Each port takes a batch's worth of ids in
one call (one round trip in PostgreSQL), never one event at a time.

Adapters: PostgreSQL (``adapters/postgres.py``, asyncpg) and an in-memory twin
(``adapters/memory.py``) for unit tests. Errors: ``services.recovery.errors``
(``ConcurrencyConflict`` for a stream another writer changed, ``StoreUnavailable``...).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

from services.common.contract.events import ChargePosted, EventData
from services.common.eventstore import AppendRequest, RecordedEvent
from services.common.outbox import OutboxMessage
from services.recovery.domain.case import Case
from services.recovery.domain.facts import CustomerHistory
from services.recovery.domain.policy import Policy
from services.recovery.domain.usual import Usual

DueTimer = tuple[str, str, datetime]
"""A timer due: (case id, kind, due at)."""


class CaseStore(Protocol):
    """The event store, as the application reads and writes it within a transaction."""

    async def read(
        self, stream_ids: Sequence[str], *, waiting_for: Sequence[str] = (), case_prefix: str = ""
    ) -> dict[str, list[RecordedEvent]]:
        """The events of ``stream_ids`` by stream (every one listed), and of the case streams
        (``case_prefix`` + case id) of the cases waiting for any of the charges
        ``waiting_for`` (rm_awaiting_charge)."""
        ...

    async def append_new(self, requests: Sequence[AppendRequest]) -> set[str]:
        """Append; the ids of the events left out as the store already held them. Raises
        ``ConcurrencyConflict`` when a stream is not at its expected version."""
        ...


class ReadModels(Protocol):
    """The read models the decisions read, and their projection."""

    async def customer_histories(self, customer_ids: Iterable[str], since: datetime) -> dict[str, CustomerHistory]:
        """Each customer's automatic concessions since ``since`` and last case owner."""
        ...

    async def usual_amounts(self, charges: Sequence[ChargePosted]) -> Usual:
        """What the usual amounts of ``charges`` (new ones) are computed from."""
        ...

    async def lock_charges(self, charge_ids: Iterable[str]) -> None:
        """A lock per charge until the transaction ends."""
        ...

    async def cases_awaiting(self, charge_ids: Iterable[str]) -> dict[str, list[str]]:
        """The cases waiting for each of ``charge_ids``, by charge."""
        ...

    async def project(
        self,
        events: Sequence[tuple[EventData, datetime]],
        cases: Iterable[Case],
        versions: dict[str, int],
        policy: Policy,
        now: datetime,
    ) -> None:
        """Bring the read models in line with ``events`` (data, occurred at) and the final
        state (and stream version) of every case they touched, its timers included."""
        ...

    async def due_timers(self, now: datetime, limit: int) -> list[DueTimer]:
        """Up to ``limit`` timers due by ``now``, oldest first, each locked for this
        transaction and skipped by any other."""
        ...

    async def drop_timers(self, timers: Sequence[DueTimer]) -> None:
        """Forget ``timers`` (fired)."""
        ...


class Messages(Protocol):
    """The inbox and the outbox."""

    async def claim_inbox(self, consumer: str, message_ids: Sequence[str]) -> set[str]:
        """Record ``message_ids`` as handled by ``consumer``; those not seen before."""
        ...

    async def enqueue(self, relay: str, messages: Sequence[OutboxMessage], *, locked: bool = False) -> None:
        """Queue ``messages`` for ``relay`` (``locked``: this transaction appended already)."""
        ...


class Transaction(Protocol):
    """One atomic transaction over the three."""

    @property
    def cases(self) -> CaseStore: ...

    @property
    def readmodels(self) -> ReadModels: ...

    @property
    def messages(self) -> Messages: ...


class UnitOfWork(Protocol):
    def batch(self) -> AbstractAsyncContextManager[Transaction]:
        """A transaction for a batch of records (on the hot path: its connection is handed
        back in the background)."""
        ...

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """A transaction for timers or a person's decision."""
        ...

    async def next_timer_due(self) -> datetime | None:
        """When the next timer falls due (None: none is set)."""
        ...
