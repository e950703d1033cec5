"""The recovery application on its in-memory twins records what it records on PostgreSQL:
the same varied run (charges and refunds, every kind of outcome, waits for charges, repeat
contacts, people's decisions, timers fired) gives the same events, outbox messages and read
models on both."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import orjson

from services.common.clock import ManualClock
from services.common.contract.events import Reason
from services.common.eventstore.shred import open_data
from services.common.settings import CommonSettings
from services.recovery.adapters.memory import MemoryUnitOfWork
from services.recovery.application import RecoveryService
from services.recovery.domain.policy import load_policy
from services.recovery.domain.roster import load_roster
from tests.helpers import VOUCHERS
from tests.replay_world import T0, records, round_of


async def _run(both: list[tuple[RecoveryService, ManualClock, Any]]) -> None:
    """The same records, decisions and timers for each service, side by side."""
    for tag, n in (("a", 30), ("b", 20)):
        for batch in round_of(tag, n, both[0][1]()):
            for service, clock, _ in both:
                clock.advance(timedelta(minutes=1))
                await service.handle_records(records(batch))
        for service, clock, escalated in both:
            for k, cid in enumerate(sorted(await escalated())[::2]):
                clock.advance(timedelta(seconds=30))
                await service.agent_decide(cid, f"a{k % 2}", [], Reason(code="no_fault", text="checked"))
            for _ in range(12):
                clock.advance(timedelta(hours=1))
                while await service.fire_due_timers(limit=7):
                    pass


def _data(data: Any) -> Any:
    return orjson.loads(orjson.dumps(data, default=str))


async def test_the_twins_record_what_postgresql_records(pool: asyncpg.Pool) -> None:
    settings = CommonSettings()
    live = RecoveryService(pool, settings, load_policy(), load_roster(), ManualClock(T0), vouchers=VOUCHERS)
    twins = MemoryUnitOfWork()
    twin = RecoveryService(None, settings, load_policy(), load_roster(), ManualClock(T0), vouchers=VOUCHERS, uow=twins)

    async def escalated_live() -> list[str]:
        return [r[0] for r in await pool.fetch("SELECT case_id FROM rm_cases WHERE status = 'escalated'")]

    async def escalated_twin() -> list[str]:
        return [cid for cid, (case, _) in twins.state.cases.items() if case.status == "escalated"]

    await _run([(live, live.clock, escalated_live), (twin, twin.clock, escalated_twin)])  # type: ignore[list-item]

    # Per stream, in version order (timers due at the same moment fire in either order). The
    # store seals personal data under the customer's key; the twin keeps it plain.
    rows = await pool.fetch("SELECT stream_id, version, event_id, event_type, data FROM events")
    stored = [orjson.loads(r[4]) for r in rows]
    await open_data(pool, [(r[3], d) for r, d in zip(rows, stored, strict=True)])
    assert sorted((r[0], r[1], r[2], r[3], d) for r, d in zip(rows, stored, strict=True)) == sorted(
        (e.stream_id, e.version, e.event_id, e.event_type, _data(e.data)) for e in twins.store._log
    )
    outbox = await pool.fetch("SELECT relay, topic, key, value, event_id FROM outbox")
    assert sorted(tuple(r) for r in outbox) == sorted(
        (relay, m.topic, m.key, m.value, m.event_id) for relay, m in twins.outbox
    )

    cases = await pool.fetch("SELECT case_id, status, version, owner_id FROM rm_cases ORDER BY case_id")
    assert [tuple(r) for r in cases] == sorted(
        (cid, case.status, version, case.owner.id) for cid, (case, version) in twins.state.cases.items()
    )
    timers = await pool.fetch("SELECT case_id, kind, due_at FROM rm_timers ORDER BY 1, 2")
    assert [tuple(r) for r in timers] == sorted((c, k, at) for (c, k), at in twins.state.timers.items())
    awaiting = await pool.fetch("SELECT charge_id, case_id FROM rm_awaiting_charge ORDER BY 1, 2")
    assert [tuple(r) for r in awaiting] == sorted(twins.state.awaiting)
    concessions = await pool.fetch("SELECT customer_id, case_id, decided_at FROM rm_concessions ORDER BY 1, 2, 3")
    assert [tuple(r) for r in concessions] == sorted(twins.state.concessions)
    charges = await pool.fetch("SELECT charge_id, refunded_amount FROM rm_charges ORDER BY 1")
    assert [tuple(r) for r in charges] == sorted((c, row.refunded) for c, row in twins.state.charges.items())
    early = await pool.fetch("SELECT charge_id, sum(amount) FROM rm_early_refunds GROUP BY 1 ORDER BY 1")
    assert [tuple(r) for r in early] == sorted(twins.state.early_refunds.items())
    amounts = await pool.fetch("SELECT kind, currency, amount, charges FROM rm_charge_amounts ORDER BY 1, 2, 3")
    assert [tuple(r) for r in amounts] == sorted(
        (kind, currency, amount, n) for (kind, currency), counts in twins.state.amounts.items()
        for amount, n in counts.items()
    )  # fmt: skip
    assert len(rows) > 100  # a run worth comparing
