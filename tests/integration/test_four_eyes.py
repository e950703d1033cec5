"""Approval limits and four eyes over the ops API on real PostgreSQL: an agent's decision
over the limit is pending (202, no refund, no DecisionMade); an agent cannot approve, nor can
its proposer once a supervisor; a different supervisor's approval makes the decision in the
proposer's name, on the charge's ledger as it is then, with the approver recorded."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from services.common.clock import ManualClock
from services.common.http import probes_app
from services.common.records import InboundRecord
from services.common.settings import CommonSettings
from services.recovery.application import RecoveryService
from services.recovery.domain.policy import load_policy
from services.recovery.domain.roster import load_roster
from services.recovery.entrypoints.ops_api import ops_router
from services.recovery.identity import Authenticator
from tests.helpers import VOUCHERS, cloudevent, sign_in

NOW = datetime.now(UTC)
CHARGE = "ch-four-eyes"
MADE = "recovery.decision.made.v1"


def _record(event: dict[str, Any]) -> InboundRecord:
    return InboundRecord("in", 0, 0, str(event["subject"]).encode(), json.dumps(event).encode())


def _refund(amount: str, refund_id: str) -> InboundRecord:
    return _record(cloudevent("billing.charge.refunded.v1", {
        "charge_id": CHARGE, "refund_id": refund_id, "amount": amount, "currency": "USD",
        "refunded_at": NOW.isoformat(),
    }, "c-4"))  # fmt: skip


@dataclass
class Desk:
    client: httpx.AsyncClient
    service: RecoveryService
    case_id: str
    agent: dict[str, str]
    supervisor: dict[str, str]
    other_supervisor: dict[str, str]

    @property
    def url(self) -> str:
        return f"/api/v1/cases/{self.case_id}/decision"


@pytest.fixture
async def desk(pool: asyncpg.Pool, common_settings: CommonSettings) -> AsyncIterator[Desk]:
    """A 40.00 USD purchase disputed (a person decides it), under an approval limit of 10.00 USD."""
    policy = load_policy().model_copy(update={"approval_limits": {"USD": Decimal("10.00")}})
    service = RecoveryService(pool, common_settings, policy, load_roster(), ManualClock(NOW), vouchers=VOUCHERS)
    charge = cloudevent("billing.charge.posted.v1", {
        "charge_id": CHARGE, "customer_id": "c-4", "amount": "40.00", "currency": "USD",
        "kind": "purchase", "posted_at": (NOW - timedelta(days=2)).isoformat(),
    }, "c-4")  # fmt: skip
    dispute = cloudevent("complaint.filed.v1", {
        "complaint_id": "cmp-4", "customer": {"id": "c-4", "name": "Ana", "email": "ana@example.com"},
        "channel": "web", "category": "charge_disputed", "charge_id": CHARGE,
        "filed_at": (NOW - timedelta(minutes=5)).isoformat(),
    }, "c-4")  # fmt: skip
    assert (await service.handle_records([_record(charge), _record(dispute)])).escalations == 1
    case_id = await pool.fetchval("SELECT case_id FROM rm_cases WHERE status = 'escalated'")

    async def ready() -> bool:
        return True

    app: FastAPI = probes_app(ready, "recovery-service", "test")
    app.include_router(ops_router(lambda: pool, lambda: service, Authenticator(lambda: pool)))
    maria, sam, sue = (
        await sign_in(pool, "maria", "agent"),
        await sign_in(pool, "sam", "supervisor"),
        await sign_in(pool, "sue", "supervisor"),
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ops") as client:
        yield Desk(client, service, case_id, maria, sam, sue)


async def _count(pool: asyncpg.Pool, event_type: str) -> int:
    n: int = await pool.fetchval("SELECT count(*) FROM events WHERE event_type = $1", event_type)
    return n


def _refund_body(amount: str) -> dict[str, Any]:
    return {"remedies": [{"type": "refund", "amount": amount, "currency": "USD"}]}


async def test_an_agent_over_the_limit_gets_a_pending_decision_that_a_different_supervisor_approves(
    desk: Desk, pool: asyncpg.Pool
) -> None:
    within = await desk.client.post(desk.url, json=_refund_body("20.00"), headers=desk.agent)
    assert within.status_code == 202, within.text
    pending = within.json()
    assert (pending["proposed_by"], pending["needs_approval"]["code"]) == ("agent:maria", "over_approval_limit")
    assert await _count(pool, MADE) == 0  # no refund, no DecisionMade
    listed = (await desk.client.get("/api/v1/approvals", headers=desk.agent)).json()
    assert [(p["case_id"], p["proposed_by"]) for p in listed] == [(desk.case_id, "agent:maria")]
    case = (await desk.client.get(f"/api/v1/cases/{desk.case_id}", headers=desk.agent)).json()["case"]
    assert case["status"] == "escalated"  # the SLA keeps running

    # An agent cannot approve; another decision waits for this one.
    assert (await desk.client.post(f"{desk.url}/approve", headers=desk.agent)).status_code == 403
    again = await desk.client.post(desk.url, json=_refund_body("1.00"), headers=desk.supervisor)
    assert again.status_code == 409, again.text

    approved = await desk.client.post(f"{desk.url}/approve", headers=desk.supervisor)
    assert approved.status_code == 200, approved.text
    made = approved.json()
    assert (made["decided_by"], made["approved_by"]) == ("agent:maria", "agent:sam")
    assert [(r["charge_id"], r["amount"]) for r in made["remedies"]] == [(CHARGE, "20.00")]
    assert await _count(pool, MADE) == 1
    timeline = (await desk.client.get(f"/api/v1/cases/{desk.case_id}", headers=desk.agent)).json()["timeline"]
    kinds = [e["type"] for e in timeline]
    assert kinds[-3:] == ["recovery.decision.proposed.v1", "recovery.decision.approved.v1", MADE]
    assert timeline[-2]["data"]["approved_by"] == "agent:sam"
    assert (await desk.client.get("/api/v1/approvals", headers=desk.agent)).json() == []
    assert (await desk.client.post(f"{desk.url}/approve", headers=desk.other_supervisor)).status_code == 409


async def test_the_proposer_cannot_approve_their_own_decision(desk: Desk, pool: asyncpg.Pool) -> None:
    assert (await desk.client.post(desk.url, json=_refund_body("20.00"), headers=desk.agent)).status_code == 202
    # Maria is made a supervisor: still not the one to approve what she proposed.
    await pool.execute("UPDATE people SET role = 'supervisor' WHERE id = 'maria'")
    own = await desk.client.post(f"{desk.url}/approve", headers=desk.agent)
    assert own.status_code == 403, own.text
    assert "four eyes" in own.json()["detail"]
    assert await _count(pool, MADE) == 0
    assert await _count(pool, "recovery.decision.approved.v1") == 0


async def test_an_approval_rechecks_the_ledger_and_a_rejection_reopens_the_decision(
    desk: Desk, pool: asyncpg.Pool
) -> None:
    assert (await desk.client.post(desk.url, json=_refund_body("20.00"), headers=desk.agent)).status_code == 202
    await desk.service.handle_records([_refund("25.00", "rf-1")])  # billing refunded 25.00 meanwhile
    late = await desk.client.post(f"{desk.url}/approve", headers=desk.supervisor)
    assert late.status_code == 422, late.text
    assert late.json()["field"] == "remedies[0].amount"
    assert await _count(pool, MADE) == 0
    assert (await desk.client.post(f"{desk.url}/reject", json={"note": "Too much now."},
                                   headers=desk.agent)).status_code == 403  # fmt: skip
    rejected = await desk.client.post(f"{desk.url}/reject", json={"note": "Too much now."}, headers=desk.supervisor)
    assert rejected.status_code == 200, rejected.text
    assert (rejected.json()["proposed_by"], rejected.json()["rejected_by"]) == ("agent:maria", "agent:sam")
    assert (await desk.client.get("/api/v1/approvals", headers=desk.agent)).json() == []
    ok = await desk.client.post(desk.url, json=_refund_body("10.00"), headers=desk.agent)
    assert ok.status_code == 200, ok.text
    assert ok.json()["decided_by"] == "agent:maria"
    assert ok.json()["approved_by"] is None
