"""`recoveryctl replay rebuild`: the read models rebuilt from the event store into fresh
tables and swapped in, while the services keep running.

1. The tables of the chosen projections are created empty in the schema ``rm_rebuild``,
   ``LIKE`` the live ones (columns, defaults, constraints, indexes).
2. The store is read in global order, a page at a time, and folded (:mod:`.fold`). Each
   page is written with the live projection code (``readmodels.project`` and
   ``readmodels.upsert_cases``) on a connection whose ``search_path`` puts ``rm_rebuild``
   first, so the same SQL lands in the new tables, and the page's position is checkpointed
   in ``rm_checkpoints`` in the same transaction. An interrupted rebuild resumes from there;
   cases it no longer holds in memory are folded again from their streams.
3. The swap, in one transaction: lock the live tables, take the event store's append lock
   (every appending transaction of the services holds it until it commits, and they project
   in that same transaction, so holding it freezes both the store and the read models),
   catch up with what was appended since, drop the old tables and move the new ones in
   under the old index names. Lock waits are bounded below PostgreSQL's
   ``deadlock_timeout``, so a service transaction is never the one chosen to fail: the
   rebuild gives way and tries again.

Errors: :class:`RebuildError` (another rebuild runs, an interrupted rebuild of other
projections waits, the swap could not get its locks).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg

from services.common.eventstore.postgres import APPEND_LOCK
from services.recovery.adapters import readmodels
from services.recovery.domain.policy import Policy
from services.recovery.replay.fold import CASE_PREFIX, Folder, Row, Tracked, types_for
from services.recovery.replay.fold import whole_transactions as _whole

SCHEMA = "rm_rebuild"
PROJECTIONS: dict[str, tuple[str, ...]] = {
    "cases": ("rm_cases", "rm_customer_owners", "rm_timers", "rm_awaiting_charge"),
    "charges": ("rm_charges", "rm_charge_amounts", "rm_early_refunds"),
    "concessions": ("rm_concessions",),
}
REBUILD_LOCK = 0x5E_C0_7E_02
CHECKPOINT = "rebuild:"
_PLACEHOLDER = datetime(1970, 1, 1, tzinfo=UTC)  # replaced by each case's own time (see fold.py)
_PAGE = (
    "SELECT global_position, stream_id, version, event_type, data, occurred_at, recorded_at FROM events"
    " WHERE global_position > $1 AND event_type = ANY($2::text[]) ORDER BY global_position LIMIT $3"
)
_EARLIER = (
    "SELECT global_position, stream_id, version, event_type, data, occurred_at, recorded_at FROM events"
    " WHERE stream_id = ANY($1::text[]) AND global_position < $2 AND event_type = ANY($3::text[])"
    " ORDER BY stream_id, version"
)


class RebuildError(Exception):
    """The rebuild cannot go on; the message says what to do."""


@dataclass(frozen=True)
class Progress:
    position: int  # written and checkpointed up to here
    head: int  # the store's head when last looked at
    events: int  # events folded by this run


@dataclass
class Outcome:
    projections: list[str]
    resumed_from: int
    position: int
    events: int
    rows: dict[str, int] = field(default_factory=dict)
    swap_attempts: int = 0


def parse_projections(names: list[str] | None) -> frozenset[str]:
    """The projections to rebuild (all when none named); an unknown name is an error."""
    if not names:
        return frozenset(PROJECTIONS)
    unknown = sorted(set(names) - set(PROJECTIONS))
    if unknown:
        raise RebuildError(f"unknown projection {', '.join(unknown)}; choose from {', '.join(sorted(PROJECTIONS))}")
    return frozenset(names)


class Rebuild:
    """One rebuild on its own connection (``connect`` opens it with the caller's TLS)."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        policy: Policy,
        projections: frozenset[str],
        *,
        page_size: int = 5000,
        restart: bool = False,
        on_page: Callable[[Progress], None] | None = None,
        max_cases_in_memory: int = 500_000,
        swap_attempts: int = 50,
    ) -> None:
        self._connect = connect
        self.policy = policy
        self.projections = projections
        self.tables = [t for p in sorted(projections) for t in PROJECTIONS[p]]
        self.key = CHECKPOINT + "+".join(sorted(projections))
        self.types = types_for(projections)
        self.page_size = page_size
        self.restart = restart
        self.on_page = on_page
        self.max_cases = max_cases_in_memory
        self.swap_attempts = swap_attempts
        self.folder = Folder(projections)
        self.position = 0
        self.head = 0
        self.live_schema = "public"

    async def run(self) -> Outcome:
        conn: asyncpg.Connection = await self._connect()
        try:
            self.live_schema = await conn.fetchval("SELECT current_schema()")
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", REBUILD_LOCK):
                raise RebuildError("another rebuild is running on this database")
            resumed = await self._begin(conn)
            await conn.execute(f"SET search_path = {SCHEMA}, {self.live_schema}")
            self.position = resumed
            if resumed:
                self.folder.forget()
            await self._bulk(conn)
            attempts = await self._swap(conn)
            rows = {t: await conn.fetchval(f"SELECT count(*) FROM {self.live_schema}.{t}") for t in self.tables}
            return Outcome(sorted(self.projections), resumed, self.position, self.folder.folded, rows, attempts)
        finally:
            await conn.close()

    # ------------------------------------------------------------------ set-up

    async def _begin(self, conn: asyncpg.Connection) -> int:
        """Resume the checkpointed rebuild of the same projections, or start afresh."""
        waiting = {
            r[0]: r[1]
            for r in await conn.fetch(
                "SELECT projection, position FROM rm_checkpoints WHERE starts_with(projection, $1)", CHECKPOINT
            )
        }
        has_schema = await conn.fetchval("SELECT to_regnamespace($1) IS NOT NULL", SCHEMA)
        if self.key in waiting and has_schema and not self.restart:
            return int(waiting[self.key])
        others = sorted(k.removeprefix(CHECKPOINT) for k in waiting if k != self.key)
        if others and not self.restart:
            raise RebuildError(
                f"an interrupted rebuild of {others[0]} is waiting: resume it with the same"
                " --projection options, or start over with --restart"
            )
        async with conn.transaction():
            await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
            await conn.execute("DELETE FROM rm_checkpoints WHERE starts_with(projection, $1)", CHECKPOINT)
            await conn.execute(f"CREATE SCHEMA {SCHEMA}")
            for t in self.tables:
                await conn.execute(f"CREATE TABLE {SCHEMA}.{t} (LIKE {self.live_schema}.{t} INCLUDING ALL)")
            await conn.execute("INSERT INTO rm_checkpoints (projection, position) VALUES ($1, 0)", self.key)
        return 0

    # ------------------------------------------------------------------ pages

    async def _page(self, conn: asyncpg.Connection, after: int) -> list[Row]:
        """The next page after ``after``, ending where a transaction ended (a case is
        never written half-way through the transaction that wrote its events)."""
        rows: list[Row] = []
        while True:
            got = await conn.fetch(_PAGE, rows[-1][0] if rows else after, self.types, self.page_size)
            rows += got
            if len(got) < self.page_size:
                return rows  # up to the head
            whole = _whole(rows)
            if whole:
                return list(whole)

    async def _bulk(self, conn: asyncpg.Connection) -> None:
        """Every page up to the head, the next one read on a second connection while this
        one is folded and written (the server encodes JSON while Python decodes it)."""
        reader: asyncpg.Connection = await self._connect()
        ahead = asyncio.ensure_future(self._page(reader, self.position))
        try:
            while rows := await ahead:
                ahead = asyncio.ensure_future(self._page(reader, rows[-1][0]))
                await self._apply(conn, rows)
        finally:
            ahead.cancel()
            with contextlib.suppress(BaseException):
                await ahead
            await reader.close()

    async def _catch_up(self, conn: asyncpg.Connection) -> bool:
        """Fold and write one page; False once the store has nothing after the position."""
        rows = await self._page(conn, self.position)
        if not rows:
            return False
        await self._apply(conn, rows)
        return True

    async def _apply(self, conn: asyncpg.Connection, rows: list[Row]) -> None:
        await self._fold(conn, rows)
        await self._write(conn, rows[-1][0])
        if self.on_page is not None:
            self.head = max(self.head, rows[-1][0])
            self.on_page(Progress(self.position, self.head, self.folder.folded))

    async def _fold(self, conn: asyncpg.Connection, rows: list[Row]) -> None:
        missing = self.folder.missing(rows)
        if missing:
            self.folder.load(await conn.fetch(_EARLIER, missing, rows[0][0], self.types))
        self.folder.fold(rows)

    async def _write(self, conn: asyncpg.Connection, position: int) -> None:
        flat, cases = self.folder.take()
        async with conn.transaction():
            if flat:
                await readmodels.project(conn, [(d, at) for d, at, _ in flat], [], {}, self.policy, _PLACEHOLDER)
            if cases:
                await self._write_cases(conn, cases)
            await conn.execute("UPDATE rm_checkpoints SET position = $2 WHERE projection = $1", self.key, position)
        self.folder.written(cases)
        self.position = position
        if len(self.folder.cases) > self.max_cases:
            self.folder.forget()

    async def _write_cases(self, conn: asyncpg.Connection, cases: list[Tracked]) -> None:
        versions = {t.case.case_id: t.version for t in cases}
        first = [t.first_state for t in cases if t.first_state is not None]
        if first:
            await readmodels.upsert_cases(conn, first, versions, self.policy, _PLACEHOLDER)
        await readmodels.upsert_cases(conn, [t.case for t in cases], versions, self.policy, _PLACEHOLDER)
        await conn.execute(
            "UPDATE rm_cases c SET updated_at = u.at"
            " FROM unnest($1::text[], $2::timestamptz[]) AS u(id, at) WHERE c.case_id = u.id",
            [t.case.case_id for t in cases],
            [t.last_at for t in cases],
        )

    # ------------------------------------------------------------------ swap

    async def _swap(self, conn: asyncpg.Connection) -> int:
        """Catch up under the append lock and move the new tables in; the attempts it took."""
        deadlock_ms = int(await conn.fetchval("SELECT setting FROM pg_settings WHERE name = 'deadlock_timeout'"))
        wait_ms = max(20, deadlock_ms // 3)
        live = ", ".join(f"{self.live_schema}.{t}" for t in self.tables)
        for attempt in range(1, self.swap_attempts + 1):
            start = self.position
            try:
                async with conn.transaction():
                    await conn.execute(f"SET LOCAL statement_timeout = {wait_ms}")
                    await conn.execute(f"LOCK TABLE {live} IN ACCESS EXCLUSIVE MODE")
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", APPEND_LOCK)
                    await conn.execute("SET LOCAL statement_timeout = 0")
                    while await self._catch_up(conn):
                        pass
                    for t in self.tables:
                        await self._move(conn, t)
                    await conn.execute("DELETE FROM rm_checkpoints WHERE projection = $1", self.key)
                    await conn.execute(f"DROP SCHEMA {SCHEMA}")
                return attempt
            except (asyncpg.QueryCanceledError, asyncpg.LockNotAvailableError, asyncpg.DeadlockDetectedError):
                if self.position != start:  # pages written in the rolled-back transaction
                    self.position = start
                    self.folder.forget()
                await asyncio.sleep(min(0.05 * attempt, 1.0))
        raise RebuildError(
            f"could not lock the read models within {self.swap_attempts} attempts; the rebuild is"
            " checkpointed: run it again to resume"
        )

    async def _move(self, conn: asyncpg.Connection, table: str) -> None:
        """Replace the live ``table`` by the rebuilt one, renaming its indexes to the old names
        and granting what was granted on it (the services' role reads and writes it)."""
        q = "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = $2"
        old = {_shape(r[1]): r[0] for r in await conn.fetch(q, self.live_schema, table)}
        new = [(r[0], _shape(r[1])) for r in await conn.fetch(q, SCHEMA, table)]
        grants = await conn.fetch(_GRANTS, self.live_schema, table)
        await conn.execute(f"DROP TABLE {self.live_schema}.{table}")
        await conn.execute(f"ALTER TABLE {SCHEMA}.{table} SET SCHEMA {self.live_schema}")
        for (grant,) in grants:
            await conn.execute(grant)
        for name, shape in new:
            wanted = old.get(shape)
            if wanted is not None and wanted != name:
                await conn.execute(f'ALTER INDEX {self.live_schema}."{name}" RENAME TO "{wanted}"')


# The table's grants as GRANT statements, but the current user's (it owns the new table).
_GRANTS = (
    "SELECT format('GRANT %s ON %I.%I TO %s', a.privilege_type, $1::text, $2::text,"
    " CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END)"
    " FROM pg_class c, aclexplode(c.relacl) AS a"
    " WHERE c.oid = format('%I.%I', $1::text, $2::text)::regclass"
    " AND a.grantee <> (SELECT oid FROM pg_roles WHERE rolname = current_user)"
)


def _shape(indexdef: str) -> str:
    """An index definition without its name and schema, to pair old and new indexes."""
    return re.sub(r"INDEX \S+ ON (?:\S+\.)?", "INDEX ON ", indexdef)


__all__ = ["CASE_PREFIX", "PROJECTIONS", "Outcome", "Progress", "Rebuild", "RebuildError", "parse_projections"]
