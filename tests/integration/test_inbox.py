"""The inbox is a fast path, not the only guard: a message handled again after its inbox
entry is gone (pruned by retention, or a topic re-read from the start) changes nothing; so
entries past ``INBOX_RETENTION_HOURS`` are pruned, by each running service."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from services.common import outbox
from services.common.clock import ManualClock
from services.common.contract import encode, new_event
from services.common.contract.events import EmailDelivered
from services.common.outbox import prune_inbox
from services.common.records import InboundRecord
from services.common.settings import CommonSettings
from services.notifier.application import NotifierService
from services.notifier.domain import load_templates
from services.notifier.settings import NotifierSettings
from services.recovery.application import BatchResult, Ready
from services.recovery.bootstrap import Runtime
from services.recovery.settings import RecoverySettings
from tests.e2e.test_notifier import NOW, decision_event
from tests.integration.test_relay import wait_for
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

    async def keeping(batch: Sequence[InboundRecord], ready: Ready | None = None) -> BatchResult:
        handled.extend(batch)
        return await handle(batch, ready)

    service.handle_records = keeping  # type: ignore[assignment]
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


async def test_a_decision_and_its_outcome_handled_again_after_the_inbox_forgot_them_change_nothing(
    pool: asyncpg.Pool,
) -> None:
    service = NotifierService(pool, NotifierSettings(), load_templates(), ManualClock(NOW))
    decision = InboundRecord("recovery.decisions", 0, 0, b"cust-1", encode(decision_event()))
    assert (await service.handle_records([decision])).requested == 1
    notification_id = await pool.fetchval("SELECT notification_id FROM notifications")
    delivered = new_event(EmailDelivered(notification_id=notification_id, at=NOW), source="delivery-worker",
                          time=NOW, subject="cust-1", correlation_id="cmp-1", causation_id="x")  # fmt: skip
    outcome = InboundRecord("notifications.email", 0, 0, b"cust-1", encode(delivered))
    assert (await service.handle_records([outcome])).outcomes == 1
    before = await _everything(pool), await pool.fetch("SELECT * FROM notifications")

    await pool.execute("DELETE FROM inbox")
    for batch in ([decision], [outcome], [outcome, decision]):
        result = await service.handle_records(batch)
        assert (result.requested, result.outcomes) == (0, 0)
    assert (await _everything(pool), await pool.fetch("SELECT * FROM notifications")) == before


async def _fill(pool: asyncpg.Pool, consumer: str, prefix: str, n: int, age: timedelta) -> None:
    await pool.execute(
        "INSERT INTO inbox (consumer, message_id, received_at)"
        " SELECT $1, $2 || i, now() - $3::interval FROM generate_series(1, $4) AS i",
        consumer, prefix, age, n,
    )  # fmt: skip


async def _left(pool: asyncpg.Pool) -> list[tuple[str, str, int]]:
    """(consumer, id prefix, entries) left in the inbox."""
    rows = await pool.fetch("SELECT consumer, left(message_id, 3), count(*) FROM inbox GROUP BY 1, 2 ORDER BY 1, 2")
    return [(r[0], r[1], r[2]) for r in rows]


async def test_entries_past_the_retention_are_pruned_in_chunks_by_instances_at_once(pool: asyncpg.Pool) -> None:
    week = timedelta(days=7)
    for consumer in ("recovery-service", "notifier-service"):
        await _fill(pool, consumer, "old", 40, week + timedelta(minutes=1))
        await _fill(pool, consumer, "new", 5, week - timedelta(minutes=1))
    pruned = await asyncio.gather(prune_inbox(pool, week, chunk=7), prune_inbox(pool, week, chunk=7))
    assert sum(pruned) == 80  # two instances at once: each row pruned by one of them
    assert await _left(pool) == [("notifier-service", "new", 5), ("recovery-service", "new", 5)]
    assert await prune_inbox(pool, week) == 0


async def test_a_running_service_prunes_its_inbox_unless_told_to_keep_it(
    settings_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rounds = 0  # pruning rounds finished
    real_prune = outbox.prune_inbox

    async def counting(*args: Any, **kwargs: Any) -> int:
        nonlocal rounds
        try:
            return await real_prune(*args, **kwargs)
        finally:
            rounds += 1

    monkeypatch.setattr(outbox, "prune_inbox", counting)
    env = {k.lower(): v for k, v in settings_env.items()}
    for hours, left in ((24, [("recovery-service", "new", 3)]),
                        (0, [("recovery-service", "new", 3), ("recovery-service", "old", 3)])):  # fmt: skip
        runtime = Runtime(RecoverySettings(**env, http_port=0, inbox_retention_hours=hours))  # type: ignore[arg-type]
        runtime.inbox_prune_interval_s = 0.05
        await runtime.start()
        try:
            pool = runtime.require_pool()
            await pool.execute("DELETE FROM inbox")
            await _fill(pool, "recovery-service", "old", 3, timedelta(hours=25))
            await _fill(pool, "recovery-service", "new", 3, timedelta(hours=23))
            if hours:
                # Two rounds finished after the fill: the second began after it, whole.
                want = rounds + 2
                await wait_for(lambda want=want: _more(rounds, want), 30, "two pruning rounds after the fill")  # type: ignore[misc]
            else:
                assert not [t for t in runtime.tasks if t.get_coro().__name__ == "prune_inbox_every"]  # type: ignore[union-attr]
            assert await _left(pool) == left
        finally:
            await runtime.close()
    assert rounds > 0


async def _more(n: int, want: int) -> bool:
    return n >= want
