"""SLA timers with two instances of the service on one database, one of them stopped in the
middle of a firing and started again: every due timer fires once (real PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

import asyncpg

from services.common.clock import ManualClock
from services.common.settings import CommonSettings
from services.recovery.application import RecoveryService
from tests.replay_world import T0, make_service, play

FIRED = ("recovery.sla.warning.v1", "recovery.sla.breached.v1")


async def _fire_until_none_due(*services: RecoveryService) -> int:
    """Each service fires at once, as its timer loop does, until none is due; the deadlocks
    PostgreSQL broke between them (the loop logs one and fires again at its next tick)."""
    deadlocks = 0

    async def loop(service: RecoveryService) -> None:
        nonlocal deadlocks
        while True:
            try:
                if not await service.fire_due_timers(limit=3):
                    return
            except asyncpg.DeadlockDetectedError:
                deadlocks += 1

    await asyncio.gather(*(loop(s) for s in services))
    return deadlocks


async def test_timers_fire_once_across_two_instances_and_a_restart(
    pool: asyncpg.Pool, common_settings: CommonSettings
) -> None:
    clock = ManualClock(T0)
    first, second = make_service(pool, common_settings, clock), make_service(pool, common_settings, clock)
    await play(first, clock, "t", 28)
    due = await pool.fetch("SELECT case_id, kind FROM rm_timers WHERE kind IN ('sla_warning', 'sla_breach')")
    escalated = {r[0] for r in due}
    assert len(escalated) >= 4
    clock.advance(timedelta(hours=11))  # past every warning and deadline

    due_now = "SELECT count(*) FROM rm_timers WHERE due_at <= $1"
    before = await pool.fetchval(due_now, clock()), await pool.fetchval("SELECT count(*) FROM events")

    # The second instance is killed in the middle of a firing: its transaction holds the
    # timers it took and its events are appended, not committed, when its connection ends.
    holding, never = asyncio.Event(), asyncio.Event()
    backend: list[int] = []
    real_commit = second._commit

    async def killed_after(tx: Any, w: Any) -> None:
        await real_commit(tx, w)
        backend.append(tx.messages.conn.get_server_pid())
        holding.set()
        await never.wait()

    second._commit = killed_after  # type: ignore[method-assign]
    stuck = asyncio.ensure_future(second.fire_due_timers(limit=3))
    try:
        await asyncio.wait_for(holding.wait(), 30)
        assert await pool.fetchval("SELECT pg_terminate_backend($1)", backend[0])
    finally:
        stuck.cancel()
        await asyncio.gather(stuck, return_exceptions=True)
    after = await pool.fetchval(due_now, clock()), await pool.fetchval("SELECT count(*) FROM events")
    assert after == before, "the killed firing left every timer due and no event"

    # Started again, it fires beside the first, both at once, until nothing is due.
    restarted = make_service(pool, common_settings, clock)
    await _fire_until_none_due(first, restarted)

    rows = await pool.fetch(
        "SELECT data->>'case_id' AS c, event_type FROM events WHERE event_type = ANY($1::text[])", list(FIRED)
    )
    fired = Counter((r["c"], r["event_type"]) for r in rows)
    assert fired == Counter({(c, t): 1 for c in escalated for t in FIRED}), "each timer fired once"
    assert await pool.fetchval("SELECT count(*) FROM rm_timers WHERE due_at <= $1", clock()) == 0
    fallbacks = await pool.fetch(
        "SELECT data->>'case_id' AS c FROM events WHERE event_type = 'recovery.decision.made.v1'"
        " AND data->'policy'->>'rule' = 'sla-breach-fallback'"
    )
    assert Counter(r["c"] for r in fallbacks) == Counter(dict.fromkeys(escalated & {r["c"] for r in fallbacks}, 1))
