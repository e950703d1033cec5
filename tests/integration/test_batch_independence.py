"""Decisions do not depend on how the broker batched the records (real PostgreSQL).

Random histories (charges of several kinds and customers, billing's refunds, complaints of
every category naming those charges or none, some before their charge, deliveries again)
go through the real ``RecoveryService.handle_records`` three ways on a fixed clock: as one
batch, as batches of one, and split at random points. The event store must end the same
each time, event for event: stream, version, type, data, ids, metadata, time.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.records import InboundRecord
from tests.helpers import cloudevent, empty_tables, opened_events
from tests.replay_world import handle_batches

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
CUSTOMERS = {"c-0": "en-US", "c-1": "es-CO", "c-2": "en-GB"}
KINDS = ("shipping", "fee", "usage", "purchase", "subscription")
AMOUNTS = ("2.50", "4.99", "12.00", "15.00", "30.00", "7455.00")
CATEGORIES = ("delivery_failed", "charge_disputed", "damaged_item", "defective_product", "cancellation",
              "service_failure", "other")  # fmt: skip
TOPICS = {"billing": "billing.charges", "complaint": "customer.complaints"}


@st.composite
def charges(draw: st.DrawFn, i: int) -> dict[str, Any]:
    customer = draw(st.sampled_from(sorted(CUSTOMERS)))
    data: dict[str, Any] = {
        "charge_id": f"ch-{i}", "customer_id": customer, "amount": draw(st.sampled_from(AMOUNTS)),
        "currency": draw(st.sampled_from(("USD", "USD", "EUR"))), "kind": draw(st.sampled_from(KINDS)),
        "posted_at": (NOW - timedelta(days=draw(st.integers(1, 40)))).isoformat(),
    }  # fmt: skip
    product = draw(st.sampled_from((None, "digital", "physical")))
    if product:
        data["product"] = {"type": product}
    return cloudevent("billing.charge.posted.v1", data, customer, event_id=f"post-{i}", time_=NOW)


@st.composite
def refunds(draw: st.DrawFn, i: int, charge_ids: Sequence[str]) -> dict[str, Any]:
    data = {
        "charge_id": draw(st.sampled_from(charge_ids)), "refund_id": f"rf-{draw(st.integers(0, 2))}",
        "amount": draw(st.sampled_from(("1.00", "2.50", "4.99", "30.00"))), "currency": "USD",
        "refunded_at": NOW.isoformat(),
    }  # fmt: skip
    return cloudevent("billing.charge.refunded.v1", data, "c-0", event_id=f"refund-{i}", time_=NOW)


@st.composite
def complaints(draw: st.DrawFn, i: int, charge_ids: Sequence[str]) -> dict[str, Any]:
    customer = draw(st.sampled_from(sorted(CUSTOMERS)))
    data: dict[str, Any] = {
        # A small pool of ids: the same complaint may come again under another message.
        "complaint_id": f"cmp-{draw(st.integers(0, 6))}",
        "customer": {"id": customer, "name": "N", "email": "n@example.com", "locale": CUSTOMERS[customer]},
        "channel": "web", "category": draw(st.sampled_from(CATEGORIES)),
        # Filed minutes ago (a complaint before its charge waits for it) or a day ago.
        "filed_at": (NOW - timedelta(minutes=draw(st.sampled_from((5, 5, 1440))))).isoformat(),
    }  # fmt: skip
    about = draw(st.sampled_from([*charge_ids, "ch-never", None]))
    if about is None:
        data["order_id"] = "o-1"
    else:
        data["charge_id"] = about
    if draw(st.booleans()):
        data["claimed_amount"], data["currency"] = draw(st.sampled_from(AMOUNTS)), "USD"
    if data["category"] == "defective_product" and draw(st.booleans()):
        data["remedy_preference"] = draw(st.sampled_from(("refund", "repair", "replacement", "credit")))
    return cloudevent("complaint.filed.v1", data, customer, event_id=f"complaint-{i}", time_=NOW)


@st.composite
def histories(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Records in log order: charges, refunds and complaints interleaved, some delivered again."""
    posted = [draw(charges(i)) for i in range(draw(st.integers(1, 5)))]
    ids = [c["data"]["charge_id"] for c in posted]
    events = posted + [draw(refunds(i, ids)) for i in range(draw(st.integers(0, 3)))]
    events += [draw(complaints(i, ids)) for i in range(draw(st.integers(1, 8)))]
    log: list[dict[str, Any]] = draw(st.permutations(events))
    for _ in range(draw(st.integers(0, 2))):  # a message delivered again, later on
        at = draw(st.integers(0, len(log) - 1))
        log.insert(draw(st.integers(at, len(log))), log[at])
    return log


def _records(log: list[dict[str, Any]]) -> list[InboundRecord]:
    out = []
    for offset, event in enumerate(log):
        topic = TOPICS[event["type"].split(".")[0]]
        out.append(InboundRecord(topic, 0, offset, event["subject"].encode(), json.dumps(event).encode()))
    return out


async def _store_after(pool: asyncpg.Pool, batches: list[list[InboundRecord]]) -> list[tuple[Any, ...]]:
    await empty_tables(pool)
    await handle_batches(pool, batches, NOW)
    rows = await pool.fetch(
        "SELECT stream_id, version, event_type, data::text, event_id, metadata::text, occurred_at"
        " FROM events ORDER BY stream_id, version"
    )
    data = await opened_events(pool, [(r["event_type"], r["data"]) for r in rows])
    return [(*r[:3], json.dumps(d, sort_keys=True), *r[4:]) for r, d in zip(rows, data, strict=True)]


def _money_on_charges(store: list[tuple[Any, ...]]) -> None:
    """What the service granted on each charge is never more than was charged."""
    charged = {json.loads(r[3])["charge_id"]: Decimal(json.loads(r[3])["amount"])
               for r in store if r[2] == "billing.charge.posted.v1"}  # fmt: skip
    granted: dict[str, Decimal] = {}
    for r in store:
        if r[2] == "recovery.decision.made.v1":
            for remedy in json.loads(r[3])["remedies"]:
                if remedy["type"] in ("refund", "charge_waiver") and remedy.get("charge_id"):
                    cid = remedy["charge_id"]
                    granted[cid] = granted.get(cid, Decimal(0)) + Decimal(remedy["amount"])
    for cid, amount in granted.items():
        assert cid in charged, f"money on {cid}, a charge never posted"
        assert amount <= charged[cid], (cid, amount, charged[cid])


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(log=histories(), data=st.data())
async def test_the_same_records_give_the_same_events_however_they_are_batched(
    pool: asyncpg.Pool, log: list[dict[str, Any]], data: st.DataObject
) -> None:
    records = _records(log)
    cuts = sorted(data.draw(st.sets(st.integers(1, len(records) - 1), max_size=4)) if len(records) > 1 else set())
    split = [records[a:b] for a, b in zip([0, *cuts], [*cuts, len(records)], strict=True)]
    whole = await _store_after(pool, [records])
    assert any(r[2] == "recovery.case.opened.v1" for r in whole)
    _money_on_charges(whole)
    assert await _store_after(pool, [[r] for r in records]) == whole
    assert await _store_after(pool, split) == whole
