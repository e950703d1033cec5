"""A varied live run of the recovery application on real PostgreSQL, for the replay tests:
charges (some refunded, one refund before its charge), every kind of outcome, cases that
wait for a charge, repeat contacts that reopen a case, escalations decided by a person, and
SLA warnings and breaches fired by the timers, over many batches with a clock that moves."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from services.common.clock import ManualClock
from services.common.contract.events import Reason, Remedy
from services.common.records import InboundRecord
from services.common.settings import CommonSettings
from services.recovery.application import RecoveryService
from services.recovery.domain.policy import load_policy
from services.recovery.domain.roster import load_roster
from services.recovery.replay.rebuild import PROJECTIONS
from tests.helpers import VOUCHERS

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
TABLES = tuple(t for tables in PROJECTIONS.values() for t in tables)  # every read-model table


def _ce(type_: str, subject: str, data: dict[str, Any], at: datetime) -> dict[str, Any]:
    return {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "tests", "type": type_,
            "time": at.isoformat(), "subject": subject, "data": data}  # fmt: skip


def charge(cust: str, charge_id: str, amount: str, kind: str, product: str | None, at: datetime,
           order_id: str | None = None) -> dict[str, Any]:  # fmt: skip
    data: dict[str, Any] = {"charge_id": charge_id, "customer_id": cust, "amount": amount, "currency": "USD",
                            "kind": kind, "description": "x",
                            "posted_at": (at - timedelta(days=2)).isoformat()}  # fmt: skip
    if product:
        data["product"] = {"sku": "s", "name": "n", "type": product}
    if order_id:
        data["order_id"] = order_id
    return _ce("billing.charge.posted.v1", cust, data, at)


def refund(cust: str, charge_id: str, amount: str, at: datetime) -> dict[str, Any]:
    return _ce("billing.charge.refunded.v1", cust, {"charge_id": charge_id, "refund_id": f"r-{charge_id}",
               "amount": amount, "currency": "USD", "refunded_at": at.isoformat()}, at)  # fmt: skip


def complaint(cust: str, complaint_id: str, category: str, at: datetime, **extra: Any) -> dict[str, Any]:
    data = {"complaint_id": complaint_id,
            "customer": {"id": cust, "name": "N", "email": "n@example.com", "locale": "en-US"},
            "channel": "web", "category": category, "description": "d", "filed_at": at.isoformat(),
            **extra}  # fmt: skip
    return _ce("complaint.filed.v1", cust, data, at)


def records(events: list[dict[str, Any]]) -> list[InboundRecord]:
    return [InboundRecord("t", 0, i, e["subject"].encode(), json.dumps(e).encode()) for i, e in enumerate(events)]


def make_service(pool: asyncpg.Pool, settings: CommonSettings, clock: ManualClock) -> RecoveryService:
    return RecoveryService(pool, settings, load_policy(), load_roster(), clock, vouchers=VOUCHERS)


async def handle_batches(pool: asyncpg.Pool, batches: list[list[InboundRecord]], now: datetime) -> None:
    """The real handler takes ``batches`` one after the other, its clock stopped at ``now``."""
    service = make_service(pool, CommonSettings(), ManualClock(now))
    for batch in batches:
        await service.handle_records(batch)


def round_of(tag: str, n: int, at: datetime) -> list[list[dict[str, Any]]]:
    """Batches for ``n`` stories tagged ``tag`` (ids unique per tag)."""
    first: list[dict[str, Any]] = []
    later: list[dict[str, Any]] = []
    for i in range(n):
        cust = f"{tag}-cust{i % max(1, n // 3)}"
        ch = f"{tag}-ch{i}"
        match i % 7:
            case 0:  # failed digital delivery: refunded at once; billing confirms the refund later
                first += [charge(cust, ch, "4.99", "purchase", "digital", at),
                          complaint(cust, f"{tag}-c{i}", "delivery_failed", at, charge_id=ch)]  # fmt: skip
                later.append(refund(cust, ch, "4.99", at))
            case 1:  # micro claim, decided; the third contact reopens it with a fresh SLA
                first += [charge(cust, ch, "2.50", "fee", None, at),
                          complaint(cust, f"{tag}-c{i}", "charge_disputed", at - timedelta(hours=2),
                                    charge_id=ch)]  # fmt: skip
                later += [complaint(cust, f"{tag}-c{i}{k}", "charge_disputed", at, charge_id=ch) for k in "xy"]
            case 2:  # a complaint before its charge: waits, then the charge arrives
                first.append(complaint(cust, f"{tag}-c{i}", "delivery_failed", at, charge_id=ch))
                later.append(charge(cust, ch, "9.99", "purchase", "digital", at))
            case 3:  # a charge that never comes: the charge wait fires
                first.append(complaint(cust, f"{tag}-c{i}", "charge_disputed", at, charge_id=ch))
            case 4:  # damaged item over the automatic limit: escalated to a person
                first += [charge(cust, ch, "3000.00", "purchase", "physical", at),
                          complaint(cust, f"{tag}-c{i}", "damaged_item", at, charge_id=ch,
                                    claimed_amount="3000.00", currency="USD")]  # fmt: skip
            case 5:  # repeat contacts about one order, across batches
                first.append(complaint(cust, f"{tag}-c{i}a", "service_failure", at, order_id=f"{tag}-o{i}"))
                later.append(complaint(cust, f"{tag}-c{i}b", "service_failure", at, order_id=f"{tag}-o{i}"))
                later.append(complaint(cust, f"{tag}-c{i}c", "service_failure", at, order_id=f"{tag}-o{i}"))
            case _:  # a refund that arrives before its charge (it waits for it, live and rebuilt)
                first.append(refund(cust, ch, "1.00", at))
                later.append(charge(cust, ch, "12.00", "usage", None, at))
    size = 9
    return [first[i : i + size] for i in range(0, len(first), size)] + [
        later[i : i + size] for i in range(0, len(later), size)
    ]


async def play(service: RecoveryService, clock: ManualClock, tag: str, n: int) -> None:
    """One round of stories, then people decide some escalations."""
    for batch in round_of(tag, n, clock()):
        clock.advance(timedelta(minutes=1))
        # each batch's events carry the service clock's time, like the live consumer
        await service.handle_records(records(batch))
    async with service.pool.acquire() as conn:
        escalated = [r[0] for r in await conn.fetch("SELECT case_id FROM rm_cases WHERE status = 'escalated'")]
    for k, cid in enumerate(sorted(escalated)[::2]):
        clock.advance(timedelta(seconds=30))
        if k % 2:
            await service.agent_decide(cid, "a1", [], Reason(code="no_fault", text="checked"))
        else:
            remedy = Remedy(type="voucher", amount="20.00", currency="USD", voucher_code=f"V-{k}-{tag}",
                            expires_at=clock() + timedelta(days=30))  # fmt: skip
            await service.agent_decide(cid, "a2", [remedy], None)


async def fire_timers(service: RecoveryService, clock: ManualClock, until: timedelta, step: timedelta) -> None:
    end = clock() + until
    while clock() < end:
        clock.advance(step)
        while await service.fire_due_timers(limit=7):
            pass


async def snapshot(conn: asyncpg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every read-model table, every column, rows in a stable order."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    for t in TABLES:
        rows = await conn.fetch(f"SELECT * FROM {t}")
        out[t] = sorted((tuple(r) for r in rows), key=repr)
    return out
