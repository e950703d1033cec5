"""The services' PostgreSQL pool: statements planned for their parameters while tables grow,
batches of rows passed as one JSON parameter, and a batch's connection handed back in the
background."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import asyncpg
import orjson
import pytest
from asyncpg.pool import PoolConnectionHolder

from services.common.db import batch_transaction, create_pool, json_rows
from services.common.eventstore import AppendRequest
from services.common.eventstore.postgres import _APPEND_STATE, APPEND_LOCK, append_on
from services.common.settings import CommonSettings
from tests.integration.test_event_store_contract import ev
from tests.integration.test_relay import wait_for


async def _seq_scans_of_events(conn: asyncpg.Connection) -> int:
    await conn.execute("SELECT pg_stat_force_next_flush()")
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    scans: int = await conn.fetchval("SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'events'")
    return scans


async def _as_owner(settings: CommonSettings, *statements: str) -> None:
    """Run ``statements`` as the owner of the test's database; the pool is the services' role,
    which may neither alter tables nor flush statistics (so it is granted that here)."""
    conn = await asyncpg.connect(settings.database_migration_dsn())
    try:
        await conn.execute("GRANT EXECUTE ON FUNCTION pg_stat_force_next_flush() TO recovery_app")
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _append_batches(pool: asyncpg.Pool, batches: int, size: int) -> None:
    for _ in range(batches):
        async with pool.acquire() as conn, conn.transaction():
            streams = [AppendRequest(f"s-{uuid.uuid4()}", None, [ev() for _ in range(4)]) for _ in range(size // 4)]
            await append_on(conn, streams)


async def test_the_pool_plans_each_statement_for_its_parameters(common_settings: CommonSettings) -> None:
    pool = await create_pool(common_settings)
    try:
        assert await pool.fetchval("SHOW plan_cache_mode") == "force_custom_plan"
    finally:
        await pool.close()
    pool = await create_pool(common_settings.model_copy(update={"database_plan_cache_mode": "auto"}))
    try:
        assert await pool.fetchval("SHOW plan_cache_mode") == "auto"  # the server's own default
    finally:
        await pool.close()


async def test_appends_keep_using_the_index_while_the_store_grows_from_empty(common_settings: CommonSettings) -> None:
    """A new deployment's first backlog: the append's look-up of existing event ids must not
    settle on a whole-table scan planned while the table was small (it did, on a generic
    plan: 14 ms a batch at 15,000 events, growing with the table)."""
    await _as_owner(common_settings)
    pool = await create_pool(common_settings.model_copy(update={"database_pool_max": 1, "database_pool_min": 1}))
    try:
        await _append_batches(pool, batches=8, size=40)  # a young table, and past the five custom plans
        await _append_batches(pool, batches=4, size=2000)  # now it is big enough for an index to pay
        async with pool.acquire() as conn:
            before = await _seq_scans_of_events(conn)
        await _append_batches(pool, batches=5, size=40)
        async with pool.acquire() as conn:
            assert await _seq_scans_of_events(conn) == before
    finally:
        await pool.close()


async def test_an_append_of_many_streams_reads_their_heads_by_index_while_the_store_is_young(
    common_settings: CommonSettings,
) -> None:
    """A backlog's batch appends to hundreds of streams. Planned for its parameters on a
    table with no statistics yet, ``stream_id = ANY(<500 streams>)`` is a scan of the whole
    events table, 30 ms a batch at 100,000 events and growing; a probe per stream is not."""
    await _as_owner(common_settings, "ALTER TABLE events SET (autovacuum_enabled = false)")  # young: no statistics
    pool = await create_pool(common_settings.model_copy(update={"database_pool_max": 1, "database_pool_min": 1}))
    try:
        await _append_batches(pool, batches=10, size=2000)
        async with pool.acquire() as conn:
            streams = [r[0] for r in await conn.fetch("SELECT DISTINCT stream_id FROM events LIMIT 500")]
            before = await _seq_scans_of_events(conn)
            async with conn.transaction():
                row = await conn.fetchrow(_APPEND_STATE, APPEND_LOCK, [], [*streams, "s-none"])
            assert await _seq_scans_of_events(conn) == before
        assert sorted(row["head_streams"]) == sorted(streams)  # the stream with no events has no head
        assert set(row["head_versions"]) == {4}
        assert row["tail_position"] == 20_000
    finally:
        await pool.close()


async def test_json_rows_reach_postgresql_with_their_types(pool: asyncpg.Pool) -> None:
    # The multi-row statements pass a batch as one JSON parameter (json_to_recordset): each
    # type must arrive exactly, whatever the session's time zone.

    aware = datetime(2026, 11, 23, 17, 0, 5, 123456, tzinfo=timezone(timedelta(hours=-5)))
    naive = datetime(2026, 11, 23, 17, 0, 5)  # taken as UTC, as asyncpg takes it
    rows: list[dict[str, Any]] = [
        {"t": "cañón \"q\" \\ \x01", "n": Decimal("4.990"), "e": Decimal("1E+2"), "i": 2**40, "b": True,
         "at": aware, "naive": naive, "doc": orjson.Fragment(b'{"k": [1, 2.5, null]}')},
        {"t": None, "n": None, "e": None, "i": None, "b": None, "at": None, "naive": None, "doc": None},
    ]  # fmt: skip
    async with pool.acquire() as conn:
        await conn.execute("SET TimeZone = 'Asia/Tokyo'")
        got = await conn.fetch(
            "SELECT * FROM json_to_recordset($1::json) AS r (t text, n numeric, e numeric, i bigint,"
            " b bool, at timestamptz, naive timestamptz, doc jsonb)",
            json_rows(rows),
        )
        await conn.execute("RESET TimeZone")
    assert [dict(r) for r in got] == [
        {"t": rows[0]["t"], "n": Decimal("4.990"), "e": Decimal("100"), "i": 2**40, "b": True, "at": aware,
         "naive": naive.replace(tzinfo=UTC), "doc": '{"k": [1, 2.5, null]}'},
        dict.fromkeys(rows[1], None),
    ]  # fmt: skip


async def test_a_batch_goes_on_while_its_connection_is_handed_back(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool's reset query (run when a connection is handed back) is not waited for: the
    batch's transaction is committed and the caller is on its way while it runs; the pool's
    close waits for it."""
    resetting, finish = asyncio.Event(), asyncio.Event()
    real_reset = asyncpg.Connection.reset

    async def held_reset(self: asyncpg.Connection, *, timeout: float | None = None) -> None:
        if not resetting.is_set():  # the first hand-back waits; the others go as usual
            resetting.set()
            await finish.wait()
        await real_reset(self, timeout=timeout)

    waited: list[bool] = []  # per connection the close waited for: was it still being handed back
    real_wait = PoolConnectionHolder.wait_until_released

    async def wait_until_released(self: PoolConnectionHolder) -> None:
        waited.append(self._in_use is not None)
        await real_wait(self)

    monkeypatch.setattr(asyncpg.Connection, "reset", held_reset)
    monkeypatch.setattr(PoolConnectionHolder, "wait_until_released", wait_until_released)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:

        async def batch() -> None:
            async with batch_transaction(pool) as conn:
                await conn.execute("INSERT INTO inbox (consumer, message_id) VALUES ('t', 'm-1')")

        await asyncio.wait_for(batch(), 5)  # back with the reset still held: not waited for
        assert resetting.is_set()
        assert await pool.fetchval("SELECT count(*) FROM inbox WHERE message_id = 'm-1'") == 1

        async def failing_batch() -> None:
            async with batch_transaction(pool) as conn:
                await conn.execute("INSERT INTO inbox (consumer, message_id) VALUES ('t', 'm-2')")
                raise RuntimeError("the batch failed")

        with pytest.raises(RuntimeError):  # rolled back, and its connection handed back too
            await failing_batch()
        closing = asyncio.create_task(pool.close())
        # close asks each connection to come back first: one is still being handed back.
        await wait_for(lambda: _asked_all(waited, pool), 10, "the close to wait for every connection")
        assert True in waited
        assert not closing.done()  # close waits for the connections being handed back
    finally:
        finish.set()
    await asyncio.wait_for(closing, 10)
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM inbox WHERE message_id = 'm-2'") == 0
    finally:
        await conn.close()


async def _asked_all(waited: list[bool], pool: asyncpg.Pool) -> bool:
    return len(waited) == len(pool._holders)
