"""The inbox is a fast path, not the only guard: a message handled again after its inbox
entry is gone (pruned by retention, or a topic re-read from the start) changes nothing."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import asyncpg

from services.common.clock import ManualClock
from services.common.records import InboundRecord
from services.common.settings import CommonSettings
from tests.replay_world import T0, charge, fire_timers, make_service, play, records, snapshot


async def _everything(pool: asyncpg.Pool) -> dict[str, list[tuple[Any, ...]]]:
    async with pool.acquire() as conn:
        out = await snapshot(conn)
        events = await conn.fetch("SELECT stream_id, version, event_id FROM events ORDER BY global_position")
        out["events"] = [tuple(r) for r in events]
        out["outbox"] = [tuple(r) for r in await conn.fetch("SELECT topic, key, value FROM outbox ORDER BY id")]
    return out


async def test_messages_handled_again_after_the_inbox_forgot_them_change_nothing(pool: asyncpg.Pool) -> None:
    clock = ManualClock(T0)
    service = make_service(pool, CommonSettings(), clock)
    handled: list[InboundRecord] = []
    handle = service.handle_records

    async def keeping(batch: list[InboundRecord]) -> Any:
        handled.extend(batch)
        return await handle(batch)

    service.handle_records = keeping  # type: ignore[method-assign]
    for tag in ("a", "b"):
        await play(service, clock, tag, 21)  # refunds (one before its charge), waits, repeats, agents
    # A shipping charge far above the customer's usual one: flagged on arrival.
    usual = [charge("c-ship", f"ch-ship-{i}", "12.00", "shipping", None, clock()) for i in range(3)]
    await service.handle_records(records(usual))
    await service.handle_records(records([charge("c-ship", "ch-ship-x", "7455.00", "shipping", None, clock())]))
    await fire_timers(service, clock, timedelta(hours=11), timedelta(minutes=30))  # warnings and breaches
    service.handle_records = handle  # type: ignore[method-assign]
    before = await _everything(pool)
    assert sum(b"recovery.charge.flagged.v1" in v for _, _, v in before["outbox"]) == 1
    assert any(r[-1] > 0 for r in before["rm_charges"])  # refunds are in the history

    await pool.execute("DELETE FROM inbox")
    clock.advance(timedelta(days=9))
    again = handled[:]
    random.Random(3).shuffle(again)  # in other batches, in another order, days later
    for i in range(0, len(again), 13):
        result = await service.handle_records(again[i : i + 13])
        assert result.decisions == 0

    assert await _everything(pool) == before
