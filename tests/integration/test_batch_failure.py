"""A batch that fails after a top-up is handled again whole: the subscriber rewinds its own
records, the handler rewinds the top-up, and every complaint is decided exactly once
(the recovery service's FastStream app in-process, real broker and PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiokafka.partitioner import DefaultPartitioner
from asyncpg.exceptions import ConnectionDoesNotExistError

import services.recovery.entrypoints.kafka as recovery_kafka
from services.common import consumer
from services.common.records import InboundRecord
from services.recovery.application import RecoveryService
from services.recovery.settings import RecoverySettings
from tests.helpers import cloudevent, produce_events
from tests.integration.test_relay import wait_for

NOW = datetime.now(UTC)
_PARTITIONER = DefaultPartitioner()


def _partition(pair: tuple[dict[str, Any], dict[str, Any]], partitions: list[int]) -> int:
    """The partition the producer's default partitioner gives the complaint's key."""
    partition: int = _PARTITIONER(pair[1]["subject"].encode(), partitions, partitions)
    return partition


def _pair(i: int, tag: str) -> tuple[dict[str, Any], dict[str, Any]]:
    cust, charge = f"{tag}-c{i}", f"{tag}-ch{i}"
    posted = cloudevent("billing.charge.posted.v1", {
        "charge_id": charge, "customer_id": cust, "amount": "4.99", "currency": "USD", "kind": "purchase",
        "description": "Film", "product": {"type": "digital"}, "posted_at": (NOW - timedelta(days=1)).isoformat(),
    }, cust)  # fmt: skip
    complaint = cloudevent("complaint.filed.v1", {
        "complaint_id": f"{tag}-cmp{i}", "customer": {"id": cust, "name": "N", "email": "n@example.com",
        "locale": "en-US"}, "channel": "web", "category": "delivery_failed", "charge_id": charge,
        "description": "It never arrived.", "filed_at": NOW.isoformat(),
    }, cust)  # fmt: skip
    return posted, complaint


async def test_a_batch_that_fails_after_a_top_up_is_decided_once_when_handled_again(
    settings_env: dict[str, str], pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {k.lower(): v for k, v in settings_env.items()}
    # A long top-up window, so the second wave surely lands in the first batch's top-up.
    settings = RecoverySettings(**env, http_host="127.0.0.1", http_port=0, recovery_top_up_ms=3000)  # type: ignore[arg-type]
    # The first wave on one partition, the second on the others: only the handler's own
    # rewind of the top-up brings the second wave back (the subscriber's covers the first).
    partitions = list(range(settings.topic_partitions))
    first = [_pair(0, "a")]
    home = _partition(first[0], partitions)
    second = [p for p in (_pair(i, "b") for i in range(40)) if _partition(p, partitions) != home][:5]
    boot = settings.kafka_bootstrap_servers
    await produce_events(boot, settings.topic_charges, [p[0] for p in first + second])

    topping_up = asyncio.Event()
    real_top_up = consumer.top_up

    async def top_up(message: Any, room: int, wait_ms: int) -> list[InboundRecord]:
        topping_up.set()
        return await real_top_up(message, room, wait_ms)

    seen: list[list[str]] = []  # the complaints of each batch handed to the application
    real_handle = RecoveryService.handle_records

    async def handle_records(self: RecoveryService, records: Any, *args: Any) -> Any:
        complaints = [r.value.decode() for r in records if r.topic == settings.topic_complaints]
        seen.append(complaints)
        if any("b-cmp" in c for c in complaints) and sum(any("b-cmp" in c for c in b) for b in seen) == 1:
            raise ConnectionDoesNotExistError(
                "the database went away (on purpose)"
            )  # the first batch with the second wave
        return await real_handle(self, records, *args)

    monkeypatch.setattr(recovery_kafka, "top_up", top_up)
    monkeypatch.setattr(RecoveryService, "handle_records", handle_records)
    app = recovery_kafka.build_app(settings)
    running = asyncio.create_task(app.run())
    try:
        await wait_for(lambda: _count(pool, "SELECT count(*) FROM rm_charges", 6), 60, "the charges to be recorded")
        topping_up.clear()
        await produce_events(boot, settings.topic_complaints, [p[1] for p in first])
        await asyncio.wait_for(topping_up.wait(), 60)  # the first wave's batch is in hand
        await produce_events(boot, settings.topic_complaints, [p[1] for p in second])
        await wait_for(lambda: _count(pool, "SELECT count(*) FROM rm_cases WHERE status = 'decided'", 6), 60,
                     "all six complaints to be decided")  # fmt: skip
    finally:
        app.exit()
        # Not a test of the stop: a broker slow under load may outlast the wait.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(running, 30)
    # The second wave came in a top-up of a batch that failed, and was handled again.
    failed = next(batch for batch in seen if any("b-cmp" in v for v in batch))
    assert any("a-cmp" in v for v in failed), "the failing batch held both waves (a top-up)"
    decisions = await pool.fetch(
        "SELECT data->>'complaint_id' AS c, count(*) AS n FROM events"
        " WHERE event_type = 'recovery.decision.made.v1' GROUP BY 1"
    )
    assert {r["c"]: r["n"] for r in decisions} == {p[1]["data"]["complaint_id"]: 1 for p in first + second}


async def _count(pool: asyncpg.Pool, sql: str, want: int = 10) -> bool:
    n: int = await pool.fetchval(sql)
    return n >= want
