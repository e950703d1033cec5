"""The PostgreSQL event store (asyncpg).

Appends are serialised by one advisory transaction lock taken before the global position is
read, so positions are gapless and in commit order (see migrations/0001_event_store.sql);
the lock is held only for the append's own statements plus the rest of its transaction, so
callers append last and commit promptly. Events go in with COPY, one round trip a batch.

Customers' personal data is sealed before it is appended and opened as it is read
(:mod:`.shred`); each call takes a :class:`~.shred.Keyring` (a batch's key cache) or makes
its own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
import orjson
from pydantic_core import from_json

from services.common.eventstore.model import (
    AppendRequest,
    ConcurrencyError,
    EncodedEvent,
    NewEvent,
    RecordedEvent,
)
from services.common.eventstore.shred import PERSONAL, Keyring, Stripped, open_events, strip_event

APPEND_LOCK = 0x5E_C0_7E_01
_COLUMNS = (
    "global_position",
    "stream_id",
    "version",
    "event_id",
    "event_type",
    "data",
    "metadata",
    "occurred_at",
    "recorded_at",
)
_SELECT = "SELECT " + ", ".join(_COLUMNS) + " FROM events"


def _row(r: asyncpg.Record) -> RecordedEvent:
    # The hot path of every read (replays, projections): pydantic-core's JSON parser is ~1.7x
    # faster here than json.loads (bench/eventstore.py; jsonb text is always valid JSON), and
    # positional arguments skip keyword matching. Column order is _COLUMNS.
    return RecordedEvent(r[0], r[1], r[2], r[3], r[4], from_json(r[5]), from_json(r[6]), r[7], r[8])


row_to_event = _row
"""A row of :data:`SELECT_EVENTS` as a :class:`RecordedEvent`."""
SELECT_EVENTS = _SELECT
"""``SELECT <every column, in the order row_to_event reads them> FROM events``: add a WHERE."""


# Takes the append lock and reads what an append needs, in one round trip (a function, so
# that its read's snapshot is taken after the lock is granted: migrations/0002_append_state.sql;
# its streams' heads read by one index probe per stream: 0003_append_state_probes.sql).
_APPEND_STATE = "SELECT * FROM event_store_append_state($1, $2::text[], $3::text[])"


def _json(value: dict[str, Any]) -> str:
    # orjson: about 5x json.dumps on event data, which every append encodes. It refuses what
    # JSON allows but it does not (integers beyond 64 bits in a producer's extra fields, say):
    # those take the standard library's encoder rather than failing the batch.
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value)


async def lock_appends(conn: asyncpg.Connection) -> None:
    """Take the append lock for the rest of the transaction (re-entrant)."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", APPEND_LOCK)


async def append_on(
    conn: asyncpg.Connection, requests: Sequence[AppendRequest], keys: Keyring | None = None
) -> list[RecordedEvent]:
    """Append within the caller's transaction on ``conn``; see :class:`EventStore`.

    The append lock is taken (again, if the caller holds it: it is re-entrant) by the same
    round trip that reads the store's state.
    """
    return (await _append(conn, requests, recorded=True, keys=keys))[0]


async def append_new(
    conn: asyncpg.Connection, requests: Sequence[AppendRequest], keys: Keyring | None = None
) -> set[str]:
    """:func:`append_on` for callers that do not read what was stored: the ids of the events
    left out because the store already held them (a message handled before), so that the
    caller's own effects (read models, outbox) can leave them out too."""
    return (await _append(conn, requests, recorded=False, keys=keys))[1]


async def _append(
    conn: asyncpg.Connection, requests: Sequence[AppendRequest], *, recorded: bool, keys: Keyring | None
) -> tuple[list[RecordedEvent], set[str]]:
    events = [e for r in requests for e in r.events]
    if not events:
        return [], set()
    row = await conn.fetchrow(
        _APPEND_STATE, APPEND_LOCK, [e.event_id for e in events], list({r.stream_id for r in requests})
    )
    existing: set[str] = set(row[0])
    stored = set(existing)
    versions: dict[str, int] = dict(zip(row[1], row[2], strict=True))
    head: int = row[3]
    now: datetime = row[4]
    rows: list[tuple[Any, ...]] = []
    out: list[RecordedEvent] = []
    for request in requests:
        fresh: list[NewEvent | EncodedEvent] = []
        for e in request.events:
            if e.event_id not in existing:
                existing.add(e.event_id)
                fresh.append(e)
        if not fresh:
            continue
        current = versions.get(request.stream_id, 0)
        if request.expected_version is not None and request.expected_version != current:
            raise ConcurrencyError(request.stream_id, request.expected_version, current)
        for e in fresh:
            current += 1
            head += 1
            data: str | dict[str, Any]
            if type(e) is EncodedEvent:
                data, metadata = e.data_json, e.metadata_json
            else:
                # Personal data is sealed first and encoded after, by _seal_rows: encoded
                # here, it would be parsed back there.
                data = e.data if e.event_type in PERSONAL else _json(e.data)
                metadata = _json(e.metadata)
            rows.append(
                (head, request.stream_id, current, e.event_id, e.event_type, data, metadata,
                 e.occurred_at, now)
            )  # fmt: skip
            if recorded:
                out.append(
                    RecordedEvent(head, request.stream_id, current, e.event_id, e.event_type,
                                  e.data, e.metadata, e.occurred_at, now)
                )  # fmt: skip
        versions[request.stream_id] = current
    if rows:
        await _seal_rows(conn, rows, keys)
        await conn.copy_records_to_table("events", records=rows, columns=_COLUMNS)
    return out, stored


async def _seal_rows(conn: asyncpg.Connection, rows: list[tuple[Any, ...]], keys: Keyring | None) -> None:
    """Seal the personal data of ``rows`` (``_COLUMNS`` order, metadata as JSON text, data
    as JSON text or, for a type that holds personal data, as a dict) in place, every data
    left as JSON text: every customer's key made or read in one query."""
    at: list[int] = []
    todo: list[Stripped] = []
    for i, row in enumerate(rows):
        if row[4] in PERSONAL:
            data: dict[str, Any] = row[5] if isinstance(row[5], dict) else from_json(row[5])
            stripped = strip_event(row[4], data, row[6])
            if stripped is not None:
                at.append(i)
                todo.append(stripped)
            elif isinstance(row[5], dict):
                rows[i] = (*row[:5], _json(data), *row[6:])
    if not todo:
        return
    keys = keys if keys is not None else Keyring()
    await keys.ensure(conn, {s.customer for s in todo})
    for i, sealed in zip(at, keys.seal_all(todo), strict=True):
        row = rows[i]
        rows[i] = (*row[:5], _json(sealed), *row[6:])


async def read_stream_on(
    conn: asyncpg.Connection | asyncpg.Pool, stream_id: str, from_version: int = 1, keys: Keyring | None = None
) -> list[RecordedEvent]:
    rows = await conn.fetch(
        _SELECT + " WHERE stream_id = $1 AND version >= $2 ORDER BY version",
        stream_id,
        from_version,
    )
    return await rows_to_events(conn, rows, keys)


async def rows_to_events(
    conn: asyncpg.Connection | asyncpg.Pool, rows: Sequence[asyncpg.Record], keys: Keyring | None = None
) -> list[RecordedEvent]:
    """Rows of :data:`SELECT_EVENTS` as events, their personal data opened."""
    events = [_row(r) for r in rows]
    await open_events(conn, events, keys)
    return events


async def read_streams_on(
    conn: asyncpg.Connection | asyncpg.Pool, stream_ids: Sequence[str], keys: Keyring | None = None
) -> dict[str, list[RecordedEvent]]:
    out: dict[str, list[RecordedEvent]] = {s: [] for s in stream_ids}
    if not stream_ids:
        return out
    rows = await conn.fetch(
        _SELECT + " WHERE stream_id = ANY($1::text[]) ORDER BY stream_id, version",
        list(stream_ids),
    )
    for e in await rows_to_events(conn, rows, keys):
        out[e.stream_id].append(e)
    return out


class PostgresEventStore:
    """The :class:`EventStore` on a pool; each call is its own transaction."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def append(self, requests: Sequence[AppendRequest]) -> list[RecordedEvent]:
        async with self._pool.acquire() as conn, conn.transaction():
            return await append_on(conn, requests)

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]:
        return await read_stream_on(self._pool, stream_id, from_version)

    async def read_streams(self, stream_ids: Sequence[str]) -> dict[str, list[RecordedEvent]]:
        return await read_streams_on(self._pool, stream_ids)

    async def read_all(
        self,
        after_position: int = 0,
        limit: int = 1000,
        *,
        types: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[RecordedEvent]:
        clauses: list[str] = ["global_position > $1"]
        args: list[object] = [after_position]
        if types is not None:
            args.append(list(types))
            clauses.append(f"event_type = ANY(${len(args)}::text[])")
        if since is not None:
            args.append(since)
            clauses.append(f"occurred_at >= ${len(args)}")
        if until is not None:
            args.append(until)
            clauses.append(f"occurred_at < ${len(args)}")
        args.append(limit)
        sql = f"{_SELECT} WHERE {' AND '.join(clauses)} ORDER BY global_position LIMIT ${len(args)}"
        return await rows_to_events(self._pool, await self._pool.fetch(sql, *args))

    async def head_position(self) -> int:
        head: int = await self._pool.fetchval("SELECT coalesce(max(global_position), 0) FROM events")
        return head
