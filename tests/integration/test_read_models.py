"""The recovery read models as the real application writes them (real PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from services.common.clock import ManualClock
from services.common.settings import CommonSettings
from services.recovery.application import RecoveryService
from services.recovery.domain.policy import load_policy
from services.recovery.domain.roster import load_roster
from tests.helpers import cloudevent
from tests.integration.test_charge_race import CHARGE, COMPLAINT, NOW, _record


async def test_a_reopened_case_shows_its_fresh_sla_deadline_in_the_read_model(pool: asyncpg.Pool) -> None:
    """A repeat contact that reopens a decided case gives it a fresh SLA; rm_cases shows it."""
    clock = ManualClock(NOW)
    service = RecoveryService(pool, CommonSettings(), load_policy(), load_roster(), clock)
    await service.handle_records([CHARGE, COMPLAINT])
    later = NOW + timedelta(days=2)
    for n in (2, 3):  # the third contact reaches the repeat-contact threshold
        filed = later + timedelta(hours=n)
        clock.now = filed
        repeat = cloudevent("complaint.filed.v1", {
            "complaint_id": f"cmp-race-{n}",
            "customer": {"id": "c-race", "name": "Luis", "email": "luis@example.com", "locale": "es-CO"},
            "channel": "web", "category": "delivery_failed", "charge_id": "ch-race",
            "description": "Still not working.", "filed_at": filed.isoformat(),
        }, "c-race", time_=filed)  # fmt: skip
        await service.handle_records([_record("customer.complaints", repeat)])
    row = await pool.fetchrow("SELECT status, sla_deadline, due_by FROM rm_cases")
    assert row["status"] == "escalated"
    assert row["sla_deadline"] == row["due_by"] == later + timedelta(hours=3) + load_policy().sla
