"""A batch that fails after its events were appended, projected and queued, but before its
transaction committed, leaves nothing behind: no inbox claim, no event, no outbox message,
no read-model row. Handled again, it is decided once (real PostgreSQL)."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from services.common.clock import ManualClock
from services.common.settings import CommonSettings
from services.recovery.adapters.postgres import PostgresMessages
from tests.replay_world import T0, charge, complaint, make_service, records

# Every table a batch writes to.
WRITTEN = ("inbox", "events", "outbox", "rm_cases", "rm_charges", "rm_timers", "rm_concessions")


class Struck(Exception):
    pass


async def _counts(conn: asyncpg.Connection | asyncpg.Pool) -> dict[str, int]:
    return {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in WRITTEN}


async def test_a_failure_after_the_append_and_before_the_commit_leaves_nothing(
    pool: asyncpg.Pool, common_settings: CommonSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = make_service(pool, common_settings, ManualClock(T0))
    batch = records([
        charge("c-1", "ch-1", "4.99", "purchase", "digital", T0),
        complaint("c-1", "cmp-1", "delivery_failed", T0, charge_id="ch-1"),
    ])  # fmt: skip
    real_enqueue = PostgresMessages.enqueue
    inside: dict[str, int] = {}

    async def enqueue_then_fail(self: PostgresMessages, *args: Any, **kwargs: Any) -> None:
        await real_enqueue(self, *args, **kwargs)
        inside.update(await _counts(self.conn))  # what the transaction holds when it fails
        raise Struck("after the append, the projection and the outbox; before the commit")

    monkeypatch.setattr(PostgresMessages, "enqueue", enqueue_then_fail)
    with pytest.raises(Struck):
        await service.handle_records(batch)
    # The failure struck late: inside the transaction everything had been written...
    assert inside["inbox"] == 2
    assert inside["events"] >= 3  # the charge, the complaint's case, its decision
    assert inside["outbox"] >= 1
    assert inside["rm_cases"] == 1
    # ...and none of it outlived the transaction.
    assert await _counts(pool) == dict.fromkeys(WRITTEN, 0)

    monkeypatch.setattr(PostgresMessages, "enqueue", real_enqueue)
    result = await service.handle_records(batch)
    assert (result.accepted, result.duplicates, result.decisions) == (2, 0, 1)
    assert await pool.fetchval("SELECT count(*) FROM events WHERE event_type = 'recovery.decision.made.v1'") == 1
    assert await _counts(pool) == inside  # the same rows the failed attempt had written
