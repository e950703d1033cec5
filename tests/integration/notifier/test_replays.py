"""Replayed events (``replay: true``) never cause an email, and never hide their original;
and a batch is recorded as if its records were handled one at a time."""

from __future__ import annotations

import asyncpg

from services.common.clock import ManualClock
from services.common.contract import encode, new_event
from services.common.contract.events import EmailDelivered, EmailFailed
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


async def test_a_batch_of_decisions_and_outcomes_is_recorded_as_if_one_at_a_time(pool: asyncpg.Pool) -> None:
    """The batch's requests and outcomes go in one statement each: every decision gets its
    request, and of two outcomes for one email in a batch the first is kept."""
    service = NotifierService(pool, NotifierSettings(), load_templates(), ManualClock(NOW))
    decisions = [decision_event().model_copy(update={"id": f"decision-{i}"}) for i in range(5)]
    result = await service.handle_records(
        [InboundRecord("recovery.decisions", 0, i, b"cust-1", encode(d)) for i, d in enumerate(decisions)]
    )
    assert (result.requested, await _requests(pool)) == (5, 5)
    ids = [r[0] for r in await pool.fetch("SELECT notification_id FROM notifications ORDER BY notification_id")]
    outcomes = [
        EmailDelivered(notification_id=ids[0], at=NOW),
        EmailFailed(notification_id=ids[0], at=NOW, error="550 no such user"),
        EmailFailed(notification_id=ids[1], at=NOW, error="550 no such user"),
    ]
    result = await service.handle_records([
        InboundRecord("notifications.email", 0, i, b"cust-1",
                      encode(new_event(o, source="delivery-worker", time=NOW, subject="cust-1")))
        for i, o in enumerate(outcomes)
    ])  # fmt: skip
    assert result.outcomes == 2
    rows = await pool.fetch("SELECT notification_id, status, error FROM notifications ORDER BY notification_id")
    assert [tuple(r) for r in rows] == [
        (ids[0], "delivered", None),
        (ids[1], "failed", "550 no such user"),
        *((i, "requested", None) for i in ids[2:]),
    ]


async def test_a_failure_reported_by_another_delivery_worker_is_stored_without_the_address(pool: asyncpg.Pool) -> None:
    """Delivery consumers other than ours publish what their mail server answered, which
    usually quotes the recipient: the notifier stores and shows it with the address masked."""
    service = NotifierService(pool, NotifierSettings(), load_templates(), ManualClock(NOW))
    await service.handle_records([InboundRecord("recovery.decisions", 0, 0, b"cust-1", encode(decision_event()))])
    notification_id = await pool.fetchval("SELECT notification_id FROM notifications")
    refused = EmailFailed(notification_id=notification_id, at=NOW,
                          error="550 5.1.1 <luis.private@example.com>: Recipient address rejected")  # fmt: skip
    event = new_event(refused, source="another-delivery-worker", time=NOW, subject="cust-1")
    await service.handle_records([InboundRecord("notifications.email", 0, 0, b"cust-1", encode(event))])
    stored = await pool.fetchval("SELECT error FROM notifications WHERE notification_id = $1", notification_id)
    assert stored == "550 5.1.1 <[redacted]>: Recipient address rejected"
