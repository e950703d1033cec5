"""The recovery application's ports (``services/recovery/ports.py``) on PostgreSQL.

One class per port over the transaction's connection; :class:`PostgresUnitOfWork` opens the
transaction on a pool and maps asyncpg's errors to the service's (``errors.py``) as the
block ends: a lost connection is ``StoreUnavailable``, a lost race on a stream or a unique
key ``ConcurrencyConflict``, any other integrity error ``StoreRejected``; the client's
error is kept as the cause.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.common.contract.events import ChargePosted, EventData
from services.common.db import batch_transaction
from services.common.eventstore import AppendRequest, ConcurrencyError, RecordedEvent
from services.common.eventstore.postgres import append_new, read_streams_on
from services.common.eventstore.shred import Keyring
from services.common.failures import is_connection_error
from services.common.outbox import OutboxMessage, claim_inbox, enqueue
from services.recovery.adapters import readmodels
from services.recovery.domain.case import Case
from services.recovery.domain.facts import CustomerHistory
from services.recovery.domain.policy import Policy
from services.recovery.domain.usual import Usual
from services.recovery.errors import ConcurrencyConflict, StoreRejected, StoreUnavailable
from services.recovery.ports import DueTimer

# The advisory-lock class of the per-case timer locks (two-int form, apart from the charges'
# class in readmodels and the event store's append lock).
TIMER_LOCK_CLASS = 0x5EC2


@contextlib.contextmanager
def mapped_errors() -> Iterator[None]:
    """Raise asyncpg's (and the event store's) errors as the service's."""
    try:
        yield
    except ConcurrencyError as exc:
        raise ConcurrencyConflict(exc.stream_id, str(exc)) from exc
    except asyncpg.UniqueViolationError as exc:
        raise ConcurrencyConflict(exc.table_name or "", "a concurrent writer recorded the same row") from exc
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise StoreRejected(f"{type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        if is_connection_error(exc):
            raise StoreUnavailable(f"the database is unavailable ({type(exc).__name__})") from exc
        raise


class PostgresCaseStore:
    """The transaction's events; ``keys``: its customers' keys, each looked up once a batch."""

    __slots__ = ("conn", "keys")

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.keys = Keyring()

    async def read(
        self, stream_ids: Sequence[str], *, waiting_for: Sequence[str] = (), case_prefix: str = ""
    ) -> dict[str, list[RecordedEvent]]:
        if waiting_for:
            return await readmodels.read_streams_and_waiting(self.conn, stream_ids, waiting_for, case_prefix, self.keys)
        return await read_streams_on(self.conn, stream_ids, self.keys)

    async def append_new(self, requests: Sequence[AppendRequest]) -> set[str]:
        return await append_new(self.conn, requests, self.keys)


class PostgresReadModels:
    __slots__ = ("conn",)

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def customer_histories(self, customer_ids: Iterable[str], since: datetime) -> dict[str, CustomerHistory]:
        return await readmodels.customer_histories(self.conn, customer_ids, since)

    async def usual_amounts(self, charges: Sequence[ChargePosted]) -> Usual:
        return await readmodels.usual_amounts(self.conn, charges)

    async def lock_charges(self, charge_ids: Iterable[str]) -> None:
        await readmodels.lock_charges(self.conn, charge_ids)

    async def cases_awaiting(self, charge_ids: Iterable[str]) -> dict[str, list[str]]:
        return await readmodels.cases_awaiting(self.conn, charge_ids)

    async def project(
        self,
        events: Sequence[tuple[EventData, datetime]],
        cases: Iterable[Case],
        versions: dict[str, int],
        policy: Policy,
        now: datetime,
    ) -> None:
        await readmodels.project(self.conn, events, cases, versions, policy, now)

    async def due_timers(self, now: datetime, limit: int) -> list[DueTimer]:
        # A case's due timers go to one instance at a time, in due order: each row locked as
        # read (none fires twice), and the case too (a lock per case until the transaction
        # ends). With rows alone, an instance holding a case's warning would let another fire
        # its breach first, and the warning would then find the case breached and fire nothing.
        rows = await self.conn.fetch(
            "SELECT case_id, kind, due_at FROM rm_timers"
            " WHERE due_at <= $1 AND pg_try_advisory_xact_lock($3, hashtext(case_id))"
            " ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED",
            now, limit, TIMER_LOCK_CLASS,
        )  # fmt: skip
        return [(r[0], r[1], r[2]) for r in rows]

    async def drop_timers(self, timers: Sequence[DueTimer]) -> None:
        await self.conn.execute(
            "DELETE FROM rm_timers WHERE (case_id, kind) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
            [t[0] for t in timers], [t[1] for t in timers],
        )  # fmt: skip


class PostgresMessages:
    __slots__ = ("conn",)

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def claim_inbox(self, consumer: str, message_ids: Sequence[str]) -> set[str]:
        return await claim_inbox(self.conn, consumer, message_ids)

    async def enqueue(self, relay: str, messages: Sequence[OutboxMessage], *, locked: bool = False) -> None:
        await enqueue(self.conn, relay, messages, locked=locked)


@dataclass(frozen=True, slots=True)
class PostgresTransaction:
    cases: PostgresCaseStore
    readmodels: PostgresReadModels
    messages: PostgresMessages

    @classmethod
    def on(cls, conn: asyncpg.Connection) -> PostgresTransaction:
        return cls(PostgresCaseStore(conn), PostgresReadModels(conn), PostgresMessages(conn))


class PostgresUnitOfWork:
    def __init__(self, pool: asyncpg.Pool | None) -> None:
        self._pool = pool

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("no database pool: the service was built without one")
        return self._pool

    @contextlib.asynccontextmanager
    async def batch(self) -> AsyncIterator[PostgresTransaction]:
        with mapped_errors():
            async with batch_transaction(self.pool) as conn:
                yield PostgresTransaction.on(conn)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresTransaction]:
        with mapped_errors():
            async with self.pool.acquire() as conn, conn.transaction():
                yield PostgresTransaction.on(conn)

    async def next_timer_due(self) -> datetime | None:
        with mapped_errors():
            due: datetime | None = await self.pool.fetchval("SELECT min(due_at) FROM rm_timers")
        return due
