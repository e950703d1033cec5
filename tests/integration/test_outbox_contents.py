"""What the recovery service queues for Kafka: every event of the contract it recorded,
each as the CloudEvent of the stored row (its personal data opened: Kafka carries it in
plain), and none of its internal events."""

from __future__ import annotations

import json

import asyncpg

from services.common.clock import ManualClock
from services.common.eventstore.shred import open_data
from services.common.settings import CommonSettings
from services.recovery.domain.events import INTERNAL_EVENT_TYPES
from tests.replay_world import T0, charge, complaint, make_service, records


async def test_the_outbox_holds_the_published_events_as_stored_and_no_internal_one(
    pool: asyncpg.Pool, common_settings: CommonSettings
) -> None:
    service = make_service(pool, common_settings, ManualClock(T0))
    await service.handle_records(records([
        charge("c-1", "ch-1", "4.99", "purchase", "digital", T0),
        complaint("c-1", "cmp-1", "delivery_failed", T0, charge_id="ch-1"),
    ]))  # fmt: skip
    stored = {r["event_id"]: r for r in await pool.fetch(
        "SELECT event_id, event_type, data, stream_id FROM events WHERE stream_id LIKE 'case-%'")}  # fmt: skip
    internal = {m.TYPE for m in INTERNAL_EVENT_TYPES}
    assert internal & {r["event_type"] for r in stored.values()}, "the case recorded internal events"
    queued = [json.loads(r["value"]) for r in await pool.fetch("SELECT value FROM outbox ORDER BY id")]
    assert [q["type"] for q in queued] == ["recovery.case.opened.v1", "recovery.decision.made.v1"]
    for q in queued:
        row = stored[q["id"]]
        assert q["type"] == row["event_type"]
        data = json.loads(row["data"])
        await open_data(pool, [(row["event_type"], data)])  # stored with personal data sealed
        assert q["data"] == data
    published = {r["event_id"] for r in stored.values() if r["event_type"] not in internal}
    assert {q["id"] for q in queued} == published
