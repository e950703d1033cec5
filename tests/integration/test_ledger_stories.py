"""The US$7,455 shipping on three cartons of toilet paper, on real PostgreSQL: judged by the shipping charges
before it however they were batched, by the same usual amount days later, and refunded no
further than billing has left it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from services.common.records import InboundRecord
from tests.helpers import cloudevent, empty_tables, opened_events
from tests.replay_world import handle_batches

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
# Other customers' shipping of a few cartons: the usual amount is 15.00 (percentile_disc).
USUAL_SHIPPING = ("12.00", "15.00", "18.00", "14.50", "16.00", "13.00", "15.00", "17.00")


def _record(event: dict[str, Any]) -> InboundRecord:
    topic = "billing.charges" if event["type"].startswith("billing.") else "customer.complaints"
    return InboundRecord(topic, 0, 0, event["subject"].encode(), json.dumps(event).encode())


def _shipping(customer: str, charge_id: str, amount: str) -> InboundRecord:
    return _record(cloudevent("billing.charge.posted.v1", {
        "charge_id": charge_id, "customer_id": customer, "amount": amount, "currency": "USD",
        "kind": "shipping", "description": "Shipping, 3 cartons",
        "posted_at": (NOW - timedelta(days=3)).isoformat(),
    }, customer, time_=NOW))  # fmt: skip


TOILET_PAPER = _shipping("mark", "ch-tp", "7455.00")
DISPUTE = _record(cloudevent("complaint.filed.v1", {
    "complaint_id": "cmp-tp", "customer": {"id": "mark", "name": "Mark", "email": "mark@example.com"},
    "channel": "phone", "category": "charge_disputed", "charge_id": "ch-tp",
    "filed_at": (NOW - timedelta(minutes=5)).isoformat(),
}, "mark", time_=NOW))  # fmt: skip


def _refund(amount: str) -> InboundRecord:
    return _record(cloudevent("billing.charge.refunded.v1", {
        "charge_id": "ch-tp", "refund_id": "rf-tp", "amount": amount, "currency": "USD",
        "refunded_at": NOW.isoformat(),
    }, "mark", time_=NOW))  # fmt: skip


def _usual() -> list[InboundRecord]:
    return [_shipping(f"shipper-{i}", f"ch-ship-{i}", a) for i, a in enumerate(USUAL_SHIPPING)]


async def _decided(pool: asyncpg.Pool, batches: list[list[InboundRecord]]) -> list[dict[str, Any]]:
    await handle_batches(pool, batches, NOW)
    rows = await pool.fetch(
        "SELECT event_type, data FROM events WHERE event_type IN"
        " ('recovery.decision.made.v1', 'recovery.case.escalated.v1', 'recovery.charge.flagged.v1')"
        " ORDER BY global_position"
    )
    return [{"type": r[0], **d} for r, d in zip(rows, await opened_events(pool, rows), strict=True)]


def _refunds(decided: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(d["policy"]["rule"], r["amount"]) for d in decided if "policy" in d for r in d["remedies"]]


async def test_the_7455_shipping_is_refunded_the_same_in_one_batch_as_in_ten(pool: asyncpg.Pool) -> None:
    records = [*_usual(), TOILET_PAPER, DISPUTE]
    assert len(records) == 10
    one = await _decided(pool, [records])
    assert _refunds(one) == [("charge-anomaly", "7440.00")]
    assert [d["type"] for d in one] == ["recovery.charge.flagged.v1", "recovery.decision.made.v1"]
    await empty_tables(pool)
    ten = await _decided(pool, [[r] for r in records])
    assert ten == one


async def test_the_usual_amount_is_the_one_the_charge_came_with_when_the_dispute_comes_days_later(
    pool: asyncpg.Pool,
) -> None:
    later = [_shipping(f"late-{i}", f"ch-late-{i}", "7000.00") for i in range(20)]  # they would move it
    decided = await _decided(pool, [[*_usual(), TOILET_PAPER], later, [DISPUTE]])
    assert _refunds(decided) == [("charge-anomaly", "7440.00")]


async def test_a_refund_billing_made_before_the_charge_came_leaves_only_the_rest(pool: asyncpg.Pool) -> None:
    decided = await _decided(pool, [[_refund("7000.00")], [*_usual(), TOILET_PAPER], [DISPUTE]])
    made = [d for d in decided if d["type"] == "recovery.decision.made.v1"]
    assert _refunds(made) == [("charge-anomaly", "455.00")]
    assert [r["code"] for r in made[0]["reasons"]] == ["charge_anomaly", "capped_at_remaining"]


async def test_a_charge_billing_refunded_in_full_goes_to_a_person(pool: asyncpg.Pool) -> None:
    decided = await _decided(pool, [[*_usual(), TOILET_PAPER, _refund("7455.00"), DISPUTE]])
    assert [(d["type"], d.get("reason", {}).get("code")) for d in decided][-1] == (
        "recovery.case.escalated.v1",
        "nothing_left_to_refund",
    )
