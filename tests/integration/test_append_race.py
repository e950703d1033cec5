"""A PostgreSQL append that waits for the append lock while another transaction appends the
same stream version or the same event: once it has the lock it raises ConcurrencyError and
stores nothing, and tried again it goes on from where the other left the stream (real
PostgreSQL)."""

from __future__ import annotations

import asyncio
import dataclasses

import asyncpg
import pytest

from services.common.eventstore import AppendRequest, ConcurrencyError
from services.common.eventstore.postgres import PostgresEventStore, append_on, lock_appends
from tests.integration.test_event_store_contract import ev


async def _waiting_for_a_lock(pool: asyncpg.Pool) -> bool:
    n: int = await pool.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
    return n > 0


@pytest.mark.parametrize("overtaken_by", ["the same stream version", "the same event"])
async def test_an_append_overtaken_between_its_read_and_the_lock_raises_and_stores_nothing(
    pool: asyncpg.Pool, overtaken_by: str
) -> None:
    mine = ev(n=1)
    theirs = ev(n=2) if overtaken_by == "the same stream version" else dataclasses.replace(mine)
    store = PostgresEventStore(pool)
    async with pool.acquire() as other:
        tx = other.transaction()
        await tx.start()
        await lock_appends(other)
        # Waits for the lock while the other appends to s-1 and commits.
        appending = asyncio.create_task(store.append([AppendRequest("s-1", 0, [mine, ev(n=3)])]))
        for _ in range(250):
            if await _waiting_for_a_lock(pool):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the append never waited for the lock")
        await append_on(other, [AppendRequest("s-1", 0, [theirs])])
        await tx.commit()
    with pytest.raises(ConcurrencyError) as raised:
        await appending
    assert raised.value.stream_id == "s-1"
    rows = await pool.fetch("SELECT event_id, version, global_position FROM events ORDER BY global_position")
    assert [(r["event_id"], r["version"], r["global_position"]) for r in rows] == [(theirs.event_id, 1, 1)]
    # Tried again (as the services do), it finds the stream where the other left it: the event
    # already stored (the same event) is kept once, every other one follows the other's.
    later = ev(n=3)
    again = await store.append([AppendRequest("s-1", None, [mine, later])])
    stored = await pool.fetch("SELECT event_id FROM events ORDER BY global_position")
    if overtaken_by == "the same event":
        assert [(r.version, r.global_position) for r in again] == [(2, 2)]
        assert [r["event_id"] for r in stored] == [theirs.event_id, later.event_id]
    else:
        assert [(r.version, r.global_position) for r in again] == [(2, 2), (3, 3)]
        assert [r["event_id"] for r in stored] == [theirs.event_id, mine.event_id, later.event_id]
