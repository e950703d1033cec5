"""Two instances, one complaint and its charge handled at the same moment.

Each transaction reads the other's half before either has committed: the complaint finds
no charge (its case starts waiting for it) and the charge finds no waiting case. Without a
second look under the append lock the case would wait out ``charge_wait_minutes`` for a
charge that has already come, and then be decided without it. A pause injected between
reading and committing makes the interleaving certain; both services and PostgreSQL are real.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from services.common.clock import ManualClock
from services.common.records import InboundRecord
from services.common.settings import CommonSettings
from services.recovery.adapters import readmodels
from services.recovery.application import RecoveryService
from services.recovery.domain.policy import load_policy
from services.recovery.domain.roster import load_roster
from tests.helpers import VOUCHERS, cloudevent
from tests.integration.test_append_race import _waiting_for_a_lock
from tests.integration.test_relay import wait_for

NOW = datetime(2025, 3, 4, 15, 0, tzinfo=UTC)


def _record(topic: str, event: dict[str, Any]) -> InboundRecord:
    return InboundRecord(topic, 0, 0, str(event["subject"]).encode(), json.dumps(event).encode())


CHARGE = _record("billing.charges", cloudevent("billing.charge.posted.v1", {
    "charge_id": "ch-race", "customer_id": "c-race", "amount": "4.99", "currency": "USD",
    "kind": "purchase", "description": "film rental", "product": {"type": "digital"},
    "posted_at": (NOW - timedelta(hours=3)).isoformat(),
}, "c-race", time_=NOW - timedelta(hours=3)))  # fmt: skip
COMPLAINT = _record("customer.complaints", cloudevent("complaint.filed.v1", {
    "complaint_id": "cmp-race",
    "customer": {"id": "c-race", "name": "Luis", "email": "luis@example.com", "locale": "es-CO"},
    "channel": "web", "category": "delivery_failed", "charge_id": "ch-race",
    "description": "It never played.", "filed_at": (NOW - timedelta(minutes=5)).isoformat(),
}, "c-race", time_=NOW))  # fmt: skip


def _service(pool: asyncpg.Pool) -> RecoveryService:
    return RecoveryService(pool, CommonSettings(), load_policy(), load_roster(), ManualClock(NOW), vouchers=VOUCHERS)


def _pause_after(monkeypatch: pytest.MonkeyPatch, name: str, reached: asyncio.Event, go: asyncio.Event) -> None:
    """Hold the first call of ``readmodels.<name>`` (after it has read) until ``go`` is set."""
    original: Callable[..., Awaitable[Any]] = getattr(readmodels, name)
    calls = {"n": 0}

    async def paused(*args: Any, **kwargs: Any) -> Any:
        result = await original(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 1:
            reached.set()
            await go.wait()
        return result

    monkeypatch.setattr(readmodels, name, paused)


async def _decisions(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    rows = await pool.fetch("SELECT data FROM events WHERE event_type = 'recovery.decision.made.v1'")
    return [json.loads(r[0]) for r in rows]


async def _outcome(pool: asyncpg.Pool) -> tuple[list[dict[str, Any]], int, int]:
    decisions = await _decisions(pool)
    awaiting = await pool.fetchval("SELECT count(*) FROM rm_awaiting_charge")
    waits = await pool.fetchval("SELECT count(*) FROM events WHERE event_type = 'recovery.case.charge_awaited.v1'")
    return decisions, awaiting, waits


async def test_complaint_read_before_the_charge_committed_is_decided_by_its_own_batch(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    reached, go = asyncio.Event(), asyncio.Event()
    # The complaint's batch has looked for the charge (none yet) and pauses before deciding.
    _pause_after(monkeypatch, "customer_histories", reached, go)
    complaint = asyncio.create_task(_service(pool).handle_records([COMPLAINT]))
    await reached.wait()
    # Meanwhile the other instance records the charge and commits; no case waits for it yet.
    await _service(pool).handle_records([CHARGE])
    go.set()
    await complaint
    decisions, awaiting, waits = await _outcome(pool)
    assert [(d["complaint_id"], d["policy"]["rule"]) for d in decisions] == [("cmp-race", "failed-delivery")]
    assert decisions[0]["remedies"][0]["amount"] == "4.99"
    assert awaiting == 0
    assert waits == 1  # it did start waiting, and was met within the same transaction


async def test_charge_read_before_the_waiting_case_committed_decides_it_in_its_own_batch(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    reached, go = asyncio.Event(), asyncio.Event()
    # The charge's batch has looked for waiting cases (none yet) and pauses before deciding.
    _pause_after(monkeypatch, "read_streams_and_waiting", reached, go)
    charge = asyncio.create_task(_service(pool).handle_records([CHARGE]))
    await reached.wait()
    # Meanwhile the other instance handles the complaint: no charge seen, so the case waits.
    await _service(pool).handle_records([COMPLAINT])
    assert await pool.fetchval("SELECT count(*) FROM rm_awaiting_charge") == 1
    go.set()
    await charge
    decisions, awaiting, _ = await _outcome(pool)
    assert [(d["complaint_id"], d["policy"]["rule"]) for d in decisions] == [("cmp-race", "failed-delivery")]
    assert awaiting == 0


async def test_two_batches_meeting_over_one_charge_take_turns_on_its_lock(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The complaint's batch holds the charge's lock (it has looked for the charge: none yet)
    and pauses; the charge's batch, looking again for cases waiting on that charge, waits
    for it to commit, then finds the waiting case and decides it."""
    reached, go = asyncio.Event(), asyncio.Event()
    _pause_after(monkeypatch, "lock_charges", reached, go)  # the charge's lock taken
    complaint = asyncio.create_task(_service(pool).handle_records([COMPLAINT]))
    await reached.wait()
    charge = asyncio.create_task(_service(pool).handle_records([CHARGE]))
    try:
        # The charge's batch waits for the charge's lock (PostgreSQL says so), not done.
        await wait_for(lambda: _waiting_for_a_lock(pool), 30, "the charge's batch to wait for the lock")
        assert not charge.done(), "the charge's batch went past the lock the complaint's batch holds"
    finally:
        go.set()
        await complaint
        await charge
    decisions, awaiting, waits = await _outcome(pool)
    assert [(d["complaint_id"], d["policy"]["rule"]) for d in decisions] == [("cmp-race", "failed-delivery")]
    assert awaiting == 0
    assert waits == 1
