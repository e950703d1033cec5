"""`replay publish` on the real broker and PostgreSQL: a fresh consumer gets exactly the
stored events of the window (ids, types, data, keys), marked ``replay: true``; each filter
narrows it as it says; a dry run counts and sends nothing."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer

from services.common.clock import ManualClock
from services.common.eventstore.shred import open_data
from services.common.kafka import create_topics, make_producer
from services.common.settings import CommonSettings
from services.recovery.application import ACCEPTED, REGISTRY
from services.recovery.replay.publish import count, publish
from services.recovery.replay.window import publishable, select
from tests.replay_world import T0, make_service, play

PUBLISHED = frozenset(publishable(REGISTRY, ACCEPTED))


async def _store(pool: asyncpg.Pool, settings: CommonSettings) -> list[asyncpg.Record]:
    clock = ManualClock(T0)
    await play(make_service(pool, settings, clock), clock, "p", 14)
    return list(
        await pool.fetch(
            "SELECT global_position, event_id, event_type, data::text, metadata->>'subject' AS subject,"
            " occurred_at FROM events ORDER BY global_position"
        )
    )


async def _read_all(bootstrap: str, topic: str, expect: int) -> list[Any]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False)  # fmt: skip
    await consumer.start()
    got: list[Any] = []
    try:
        for _ in range(60):
            batches = await consumer.getmany(timeout_ms=300)
            got += [r for rs in batches.values() for r in rs]
            if len(got) >= expect and not batches:
                break
    finally:
        await consumer.stop()
    return got


async def _replay(pool: asyncpg.Pool, settings: CommonSettings, **options: Any) -> tuple[str, int]:
    topic = f"replayed.{uuid.uuid4().hex[:8]}"
    await create_topics(settings, [topic])
    selection = select(registry=REGISTRY, inputs=ACCEPTED, topic=topic, **options)
    producer = make_producer(settings)
    await producer.start()
    try:
        sent = await publish(pool, producer, settings, selection, topic=topic, page_size=7)
    finally:
        await producer.stop()
    return topic, sent.total


def _ids(records: list[Any]) -> list[str]:
    return [json.loads(r.value)["id"] for r in records]


async def test_a_window_reaches_a_fresh_consumer_as_the_stored_events_marked_replay(
    pool: asyncpg.Pool, common_settings: CommonSettings
) -> None:
    stored = [r for r in await _store(pool, common_settings) if r["event_type"] in PUBLISHED]
    assert {r["event_type"] for r in stored} >= {"recovery.case.opened.v1", "recovery.decision.made.v1"}
    topic, sent = await _replay(pool, common_settings, start="1")
    got = await _read_all(common_settings.kafka_bootstrap_servers, topic, len(stored))

    assert sent == len(got) == len(stored)
    by_id = {r["event_id"]: r for r in stored}
    assert sorted(_ids(got)) == sorted(by_id)
    for record in got:
        event = json.loads(record.value)
        row = by_id[event["id"]]
        assert event["replay"] is True
        assert event["type"] == row["event_type"]
        stored_data = json.loads(row["data"])
        await open_data(pool, [(row["event_type"], stored_data)])  # personal data is stored sealed
        assert event["data"] == stored_data
        assert event["subject"] == row["subject"]
        assert record.key == row["subject"].encode()  # keyed by customer id, as the relay keys
        assert dict(record.headers)["content-type"] == b"application/cloudevents+json"
    # one customer's events keep their stored order on its partition
    per_key: dict[bytes, list[str]] = {}
    for record in sorted(got, key=lambda r: (r.partition, r.offset)):
        per_key.setdefault(record.key, []).append(json.loads(record.value)["id"])
    order = {r["event_id"]: r["global_position"] for r in stored}
    assert all([order[i] for i in ids] == sorted(order[i] for i in ids) for ids in per_key.values())


async def test_each_filter_narrows_the_window_and_a_dry_run_counts_it(
    pool: asyncpg.Pool, common_settings: CommonSettings
) -> None:
    stored = await _store(pool, common_settings)
    mine = [r for r in stored if r["event_type"] in PUBLISHED]
    mid = mine[len(mine) // 2]
    customer = mine[0]["subject"]
    cases: list[tuple[dict[str, Any], list[asyncpg.Record]]] = [
        ({"start": "1", "types": ["recovery.decision.made.v1"]},
         [r for r in mine if r["event_type"] == "recovery.decision.made.v1"]),
        ({"start": "1", "customer": customer}, [r for r in mine if r["subject"] == customer]),
        ({"start": str(mid["global_position"]), "end": str(mine[-3]["global_position"])},
         [r for r in mine if mid["global_position"] <= r["global_position"] < mine[-3]["global_position"]]),
        ({"start": mid["occurred_at"].isoformat()}, [r for r in mine if r["occurred_at"] >= mid["occurred_at"]]),
        ({"start": "1", "end": (mid["occurred_at"] + timedelta(microseconds=1)).isoformat()},
         [r for r in mine if r["occurred_at"] <= mid["occurred_at"]]),
        ({"start": "1", "types": ["billing.charge.posted.v1"]},
         [r for r in stored if r["event_type"] == "billing.charge.posted.v1"]),
    ]  # fmt: skip
    for options, expected in cases:
        assert expected, options
        assert 0 < len(expected) < len(stored), options
        selection = select(registry=REGISTRY, inputs=ACCEPTED, topic="x", **options)
        counted = await count(pool, selection)
        want: dict[str, int] = {}
        for r in expected:
            want[r["event_type"]] = want.get(r["event_type"], 0) + 1
        assert counted == dict(sorted(want.items())), options  # what --dry-run shows, sending nothing
        topic, sent = await _replay(pool, common_settings, **options)
        got = await _read_all(common_settings.kafka_bootstrap_servers, topic, len(expected))
        assert sent == len(expected), options
        assert sorted(_ids(got)) == sorted(r["event_id"] for r in expected), options
