"""The recovery service as a real process on the real broker and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from tests.helpers import ServiceProcess, TopicReader, cloudevent, produce, produce_events

NOW = datetime.now(UTC)


def itunes_charge(customer: str, charge_id: str) -> dict[str, object]:
    return cloudevent("billing.charge.posted.v1", {
        "charge_id": charge_id, "customer_id": customer, "amount": "4.99", "currency": "USD",
        "kind": "purchase", "description": "Eat, Pray, Love (film rental)",
        "product": {"sku": "film-1", "name": "Eat, Pray, Love", "type": "digital"},
        "posted_at": (NOW - timedelta(hours=3)).isoformat(),
    }, customer)  # fmt: skip


def itunes_complaint(customer: str, charge_id: str, complaint_id: str) -> dict[str, object]:
    return cloudevent("complaint.filed.v1", {
        "complaint_id": complaint_id,
        "customer": {"id": customer, "name": "Luis", "email": "luis@example.com", "locale": "es-CO"},
        "channel": "web", "category": "delivery_failed", "charge_id": charge_id,
        "description": "La película se volvió a descargar dos veces y no se pudo ver.",
        "filed_at": (NOW - timedelta(minutes=5)).isoformat(),
    }, customer)  # fmt: skip


async def _recorded(database_url: str, charge_id: str, timeout_s: float = 60.0) -> None:
    """Wait until the service has recorded ``charge_id``."""
    conn = await asyncpg.connect(database_url)
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not await conn.fetchval("SELECT count(*) FROM rm_charges WHERE charge_id = $1", charge_id):
            assert asyncio.get_running_loop().time() < deadline, f"charge {charge_id} not recorded in {timeout_s}s"
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


@pytest.fixture
def service(settings_env: dict[str, str], tmp_path: Path) -> Iterator[ServiceProcess]:
    proc = ServiceProcess("recovery-service", settings_env, tmp_path / "recovery.log").start()
    yield proc
    proc.stop()


async def test_a_failed_digital_delivery_is_refunded_at_once_and_bad_input_is_dead_lettered(
    settings_env: dict[str, str], service: ServiceProcess
) -> None:
    boot = settings_env["KAFKA_BOOTSTRAP_SERVERS"]
    complaint = itunes_complaint("cust-1", "ch-1", "cmp-1")
    # Bad input first: the good input behind it must still be decided.
    await produce(boot, settings_env["TOPIC_COMPLAINTS"], [("cust-1", b"{not json")])
    await produce_events(boot, settings_env["TOPIC_CHARGES"], [itunes_charge("cust-1", "ch-1")])
    # The charge recorded first, so the complaint is what decides (its causation): the two
    # topics' records may otherwise reach the consumer in either order.
    await _recorded(settings_env["DATABASE_URL"], "ch-1")
    await produce_events(boot, settings_env["TOPIC_COMPLAINTS"], [complaint])
    async with (
        TopicReader(boot, settings_env["TOPIC_DECISIONS"]) as decisions,
        TopicReader(boot, settings_env["TOPIC_DLQ"]) as dlq,
    ):
        try:
            made = await decisions.wait_for(lambda e: e["type"] == "recovery.decision.made.v1", 60)
        except AssertionError:
            print(service.log()[-5000:])
            raise
        data = made[0]["data"]
        assert data["policy"]["rule"] == "failed-delivery"
        assert data["decided_by"] == "policy"
        assert data["within_sla"] is True
        assert [(r["type"], r["amount"], r["currency"]) for r in data["remedies"]] == [("refund", "4.99", "USD")]
        assert made[0]["subject"] == "cust-1"
        assert made[0]["correlationid"] == "cmp-1"
        assert made[0]["causationid"] == complaint["id"]
        opened = await decisions.wait_for(lambda e: e["type"] == "recovery.case.opened.v1")
        assert opened[0]["data"]["case_owner"]["name"]
        dead = await dlq.wait_for(lambda e: e["type"] == "recovery.deadletter.v1")
        assert dead[0]["data"]["error"]["code"] == "not_json"
        assert dead[0]["data"]["original"]["value"] == "{not json"

        # A redelivered complaint (same CloudEvents id) changes nothing. A complaint of the
        # same customer behind it (same key: same partition, handled and published in order)
        # says when the redelivered one has been handled.
        control = cloudevent("complaint.filed.v1", {
            "complaint_id": "cmp-control",
            "customer": {"id": "cust-1", "name": "Luis", "email": "luis@example.com", "locale": "es-CO"},
            "channel": "web", "category": "other", "description": "Something else.", "filed_at": NOW.isoformat(),
        }, "cust-1")  # fmt: skip
        await produce_events(boot, settings_env["TOPIC_COMPLAINTS"], [complaint, control])
        await decisions.wait_for(
            lambda e: e["type"] == "recovery.case.escalated.v1" and e["correlationid"] == "cmp-control"
        )
        assert len([e for e in decisions.events if e["type"] == "recovery.decision.made.v1"]) == 1
        assert "Traceback" not in service.log()
        assert "luis@example.com" not in service.log()
        _ = json
