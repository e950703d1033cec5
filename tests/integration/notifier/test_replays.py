"""Replayed events (``replay: true``) never cause an email, and never hide their original."""

from __future__ import annotations

import asyncpg

from services.common.clock import ManualClock
from services.common.contract import encode
from services.common.records import InboundRecord
from services.notifier.application import NotifierService
from services.notifier.domain import load_templates
from services.notifier.settings import NotifierSettings
from tests.e2e.test_notifier import NOW, decision_event


async def _requests(pool: asyncpg.Pool) -> int:
    n: int = await pool.fetchval("SELECT count(*) FROM events WHERE event_type = 'notification.email.requested.v1'")
    return n


async def test_a_replay_sends_nothing_and_the_original_after_it_still_gets_its_email(pool: asyncpg.Pool) -> None:
    service = NotifierService(pool, NotifierSettings(), load_templates(), ManualClock(NOW))
    original = decision_event()
    replayed = original.model_copy(update={"replay": True})

    def record(offset: int, event: object) -> InboundRecord:
        return InboundRecord("recovery.decisions", 0, offset, b"cust-1", encode(event))  # type: ignore[arg-type]

    result = await service.handle_records([record(0, replayed)])
    assert (result.skipped, result.requested, await _requests(pool)) == (1, 0, 0)
    result = await service.handle_records([record(1, original)])
    assert (result.requested, await _requests(pool)) == (1, 1)
    await service.handle_records([record(2, replayed)])  # and a replay after it: still one
    assert await _requests(pool) == 1
