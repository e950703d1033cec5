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


async def test_a_case_whose_warning_one_instance_holds_is_left_whole_to_it(
    pool: asyncpg.Pool, common_settings: CommonSettings
) -> None:
    """One instance has taken a case's warning and not fired it yet; the other, firing
    everything else that is due, leaves that case's breach alone, so the warning still comes
    before the breach (a breach first would leave the warning nothing to fire)."""
    clock = ManualClock(T0)
    first, second = make_service(pool, common_settings, clock), make_service(pool, common_settings, clock)
    await play(first, clock, "w", 28)
    clock.advance(timedelta(hours=11))  # past every warning and deadline
    held, release = asyncio.Event(), asyncio.Event()
    taken: list[Any] = []
    real_fire = second._fire

    async def paused(tx: Any, w: Any, due: Any) -> None:
        if due[0][1] == "sla_warning" and not held.is_set():  # the first warning it takes
            taken.extend(due)
            held.set()
            await release.wait()
        await real_fire(tx, w, due)

    async def until_one_is_held() -> None:
        while not held.is_set():  # the timers due before it (waits for charges) fire as usual
            await second.fire_due_timers(limit=1)

    second._fire = paused  # type: ignore[method-assign]
    holder = asyncio.ensure_future(until_one_is_held())
    try:
        await asyncio.wait_for(held.wait(), 30)
        ((case, _, _),) = taken
        # Everything else due, at once; it neither fires the held case's breach nor waits
        # for the case (firing the breach would wait on the held warning's row).
        await asyncio.wait_for(first.fire_due_timers(), 30)
        kinds = "SELECT event_type FROM events WHERE data->>'case_id' = $1 AND event_type = ANY($2::text[])"
        assert [r[0] for r in await pool.fetch(kinds, case, list(FIRED))] == []
    finally:
        release.set()
        await asyncio.wait_for(holder, 30)
    await _fire_until_none_due(first, second)
    in_order = f"{kinds} ORDER BY global_position"
    assert [r[0] for r in await pool.fetch(in_order, case, list(FIRED))] == list(FIRED)  # the warning, then the breach
