"""The ops API on real PostgreSQL: cases made by the real application from complaint
CloudEvents, read and decided over HTTP by people signed in with the built-in issuer's
tokens; the service credential only reads."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from services.common.clock import ManualClock
from services.common.http import HttpOptions, probes_app
from services.common.records import InboundRecord
from services.common.settings import CommonSettings
from services.recovery.application import RecoveryService
from services.recovery.bootstrap import Runtime
from services.recovery.domain.policy import load_policy
from services.recovery.domain.reference import case_reference, spell
from services.recovery.domain.roster import load_roster
from services.recovery.entrypoints.ops_api import ops_router
from services.recovery.identity import Authenticator, People
from services.recovery.settings import RecoverySettings
from tests.helpers import cloudevent, sign_in
from tests.integration.test_case_references import every_case_has_key_7

NOW = datetime(2025, 3, 4, 15, 0, tzinfo=UTC)
TOKEN = "s3cret-ops-token-7c1e9a40b2d85f36"
GOOD = {"Authorization": f"Bearer {TOKEN}"}
EMAIL = "ana.private@example.com"


def _record(topic: str, event: dict[str, Any], offset: int) -> InboundRecord:
    return InboundRecord(topic, 0, offset, str(event["subject"]).encode(), json.dumps(event).encode())


def service_failure() -> dict[str, Any]:
    return cloudevent("complaint.filed.v1", {
        "complaint_id": "cmp-esc",
        "customer": {"id": "c-esc", "name": "Ana Privada", "email": EMAIL, "locale": "es-CO"},
        "channel": "phone", "category": "service_failure", "claimed_amount": "20.00", "currency": "USD",
        "description": "El servicio no funcionó.", "filed_at": (NOW - timedelta(minutes=10)).isoformat(),
    }, "c-esc", time_=NOW)  # fmt: skip


def itunes_charge() -> dict[str, Any]:
    return cloudevent("billing.charge.posted.v1", {
        "charge_id": "ch-film", "customer_id": "c-film", "amount": "4.99", "currency": "USD",
        "kind": "purchase", "description": "Eat, Pray, Love (film rental)",
        "product": {"sku": "film-1", "name": "Eat, Pray, Love", "type": "digital"},
        "posted_at": (NOW - timedelta(hours=3)).isoformat(),
    }, "c-film", time_=NOW - timedelta(hours=3))  # fmt: skip


def itunes_complaint() -> dict[str, Any]:
    return cloudevent("complaint.filed.v1", {
        "complaint_id": "cmp-film",
        "customer": {"id": "c-film", "name": "Luis", "email": "luis@example.com", "locale": "es-CO"},
        "channel": "web", "category": "delivery_failed", "charge_id": "ch-film",
        "description": "La película se volvió a descargar dos veces y no se pudo ver.",
        "filed_at": (NOW - timedelta(minutes=5)).isoformat(),
    }, "c-film", time_=NOW)  # fmt: skip


@dataclass
class Desk:
    client: httpx.AsyncClient
    escalated: str
    decided: str
    agent: dict[str, str]
    auditor: dict[str, str]


def _app(
    pool: asyncpg.Pool,
    service: RecoveryService,
    signin: Authenticator | None,
    docs_token: SecretStr | None = SecretStr(TOKEN),
) -> FastAPI:
    async def ready() -> bool:
        return True

    app = probes_app(ready, "recovery-service", "test", HttpOptions(docs="token", docs_token=docs_token))
    app.include_router(ops_router(lambda: pool, lambda: service, signin))
    return app


@pytest.fixture
async def service(pool: asyncpg.Pool, common_settings: CommonSettings) -> RecoveryService:
    svc = RecoveryService(pool, common_settings, load_policy(), load_roster(), ManualClock(NOW))
    charges, complaints = common_settings.topic("charges"), common_settings.topic("complaints")
    await svc.handle_records([_record(charges, itunes_charge(), 0)])
    result = await svc.handle_records(
        [_record(complaints, service_failure(), 0), _record(complaints, itunes_complaint(), 1)]
    )
    assert result.escalations == 1
    assert result.decisions == 1
    return svc


@pytest.fixture
async def desk(pool: asyncpg.Pool, service: RecoveryService) -> AsyncIterator[Desk]:
    ids = {r["complaint_id"]: r["case_id"] for r in await pool.fetch("SELECT complaint_id, case_id FROM rm_cases")}
    app = _app(pool, service, Authenticator(lambda: pool, service_token=SecretStr(TOKEN)))
    maria, audrey = await sign_in(pool, "maria", "agent"), await sign_in(pool, "audrey", "auditor")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ops") as client:
        yield Desk(client, ids["cmp-esc"], ids["cmp-film"], maria, audrey)


async def test_every_route_needs_a_verified_identity(desk: Desk) -> None:
    routes = [
        ("GET", "/api/v1/cases"),
        ("GET", "/api/v1/escalations"),
        ("GET", f"/api/v1/cases/{desk.escalated}"),
        ("POST", f"/api/v1/cases/{desk.escalated}/decision"),
    ]
    forged = "rsk_" + "A" * 43  # the shape of a sign-in token, issued to nobody
    for method, url in routes:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
                        {"Authorization": f"Bearer {forged}"}, {"Authorization": "Bearer a.b.c"}):  # fmt: skip
            r = await desk.client.request(method, url, headers=headers, json={"agent_id": "x"})
            assert r.status_code == 401, (method, url, headers, r.text)
            assert r.headers["www-authenticate"] == "Bearer"
    # Nothing was decided by the refused POSTs.
    r = await desk.client.get(f"/api/v1/cases/{desk.escalated}", headers=GOOD)
    assert r.json()["case"]["status"] == "escalated"


async def test_the_service_credential_and_an_auditor_read_but_never_decide(desk: Desk, pool: asyncpg.Pool) -> None:
    url = f"/api/v1/cases/{desk.escalated}/decision"
    body = {"decline_reason": {"code": "agent_declined", "text": "Not covered."}}
    for headers in (GOOD, desk.auditor):
        assert (await desk.client.get("/api/v1/escalations", headers=headers)).status_code == 200
        assert (await desk.client.get(f"/api/v1/cases/{desk.escalated}", headers=headers)).status_code == 200
        refused = await desk.client.post(url, json=body, headers=headers)
        assert refused.status_code == 403, refused.text
    shown = (await desk.client.get(f"/api/v1/cases/{desk.escalated}", headers=GOOD)).json()
    assert shown["case"]["status"] == "escalated"
    assert await pool.fetchval("SELECT count(*) FROM events WHERE event_type = 'recovery.decision.made.v1'") == 1


async def test_a_disabled_persons_token_stops_working(desk: Desk, pool: asyncpg.Pool) -> None:
    assert (await desk.client.get("/api/v1/cases", headers=desk.agent)).status_code == 200
    assert await People(pool).disable("maria")
    for method, url in (("GET", "/api/v1/cases"), ("POST", f"/api/v1/cases/{desk.escalated}/decision")):
        r = await desk.client.request(method, url, headers=desk.agent, json={"remedies": []})
        assert r.status_code == 401, r.text
    assert (await People(pool).get("maria")) is not None  # kept: past decisions name her


async def test_a_server_without_a_way_to_sign_in_refuses_everything_but_the_probes(
    pool: asyncpg.Pool, service: RecoveryService
) -> None:
    for signin in (None, Authenticator(lambda: pool, local=False)):
        app = _app(pool, service, signin, None)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ops") as client:
            for headers in ({}, GOOD, {"Authorization": "Bearer "}):
                r = await client.get("/api/v1/escalations", headers=headers)
                assert r.status_code == 503
                assert r.json()["detail"] == "ops API disabled: no sign-in configured (see docs/security.md)"
            assert (await client.get("/healthz")).status_code == 200
            # The docs are behind the service credential: with none set, they are off.
            assert (await client.get("/openapi.json", headers=GOOD)).status_code == 404


async def test_the_probes_are_public_and_the_openapi_document_behind_the_token_describes_the_api(
    desk: Desk,
) -> None:
    assert (await desk.client.get("/healthz")).json() == {"status": "ok"}
    assert (await desk.client.get("/readyz")).status_code == 200
    assert (await desk.client.get("/openapi.json")).status_code == 401
    doc = (await desk.client.get("/openapi.json", headers=GOOD)).json()
    assert doc["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http", "scheme": "bearer",
        "description": "a person's sign-in token or JWT, or OPS_API_TOKEN (read-only)",
    }  # fmt: skip
    for path in ("/api/v1/cases", "/api/v1/escalations", "/api/v1/cases/{case_id}",
                 "/api/v1/cases/{case_id}/decision"):  # fmt: skip
        ops = doc["paths"][path]
        for op in ops.values():
            assert op["security"] == [{"HTTPBearer": []}], path
    assert "security" not in doc["paths"]["/healthz"]["get"]
    schemas = doc["components"]["schemas"]
    assert {"CaseSummary", "CaseDetail", "TimelineEntry", "DecisionRequest", "DecisionSummary"} <= set(schemas)
    post = doc["paths"]["/api/v1/cases/{case_id}/decision"]["post"]
    assert post["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/DecisionSummary"
    }
    assert {"404", "409", "401", "403", "503"} <= set(post["responses"])
    agent_id = schemas["DecisionRequest"]["properties"]["agent_id"]
    assert agent_id["deprecated"] is True
    assert "agent_id" not in schemas["DecisionRequest"].get("required", [])


async def test_the_desk_lists_cases_and_escalations(desk: Desk) -> None:
    esc = (await desk.client.get("/api/v1/escalations", headers=GOOD)).json()
    assert [c["case_id"] for c in esc] == [desk.escalated]
    assert esc[0]["status"] == "escalated"
    assert esc[0]["priority"]
    assert esc[0]["assignee"]
    every = (await desk.client.get("/api/v1/cases", headers=GOOD)).json()
    assert {c["case_id"] for c in every} == {desk.escalated, desk.decided}
    decided = (await desk.client.get("/api/v1/cases", params={"status": "decided"}, headers=GOOD)).json()
    assert [(c["case_id"], c["decided_by"], c["rule"]) for c in decided] == [(desk.decided, "policy",
                                                                               "failed-delivery")]  # fmt: skip
    one = (await desk.client.get("/api/v1/cases", params={"limit": 1}, headers=GOOD)).json()
    assert len(one) == 1
    bad = await desk.client.get("/api/v1/cases", params={"limit": 0}, headers=GOOD)
    assert bad.status_code == 422


async def test_the_timeline_carries_no_customer_personal_data(desk: Desk) -> None:
    r = await desk.client.get(f"/api/v1/cases/{desk.escalated}", headers=GOOD)
    assert r.status_code == 200
    body = r.json()
    assert body["case"]["case_id"] == desk.escalated
    types = [e["type"] for e in body["timeline"]]
    assert "recovery.case.opened.v1" in types
    assert "recovery.case.escalated.v1" in types
    assert [e["version"] for e in body["timeline"]] == list(range(1, len(types) + 1))
    contact = next(e for e in body["timeline"] if e["type"] == "recovery.case.contact_added.v1")
    assert contact["data"]["complaint"]["customer"] == {"id": "c-esc"}
    assert EMAIL not in r.text
    assert "Ana Privada" not in r.text
    film = await desk.client.get(f"/api/v1/cases/{desk.decided}", headers=GOOD)
    assert "luis@example.com" not in film.text
    made = next(e for e in film.json()["timeline"] if e["type"] == "recovery.decision.made.v1")
    assert made["data"]["customer"] == {"id": "c-film"}
    assert made["data"]["remedies"][0]["amount"] == "4.99"


async def test_an_agent_decides_an_escalated_case_once_as_herself_whatever_agent_id_says(desk: Desk) -> None:
    url = f"/api/v1/cases/{desk.escalated}/decision"
    refund = {"type": "refund", "amount": "15.00", "currency": "USD", "settlement": "3-5 days"}
    body = {"agent_id": "the-boss", "note": "called the customer", "remedies": [refund]}
    r = await desk.client.post(url, json=body, headers=desk.agent)
    assert r.status_code == 200, r.text
    made = r.json()
    assert made["case_id"] == desk.escalated
    assert made["decided_by"] == "agent:maria"
    assert made["outcome"] == "resolved"
    assert [(x["type"], x["amount"]) for x in made["remedies"]] == [("refund", "15.00")]
    shown = (await desk.client.get(f"/api/v1/cases/{desk.escalated}", headers=GOOD)).json()
    assert shown["case"]["status"] == "decided"
    assert shown["case"]["decided_by"] == "agent:maria"
    assert shown["timeline"][-1]["type"] == "recovery.decision.made.v1"
    assert "the-boss" not in json.dumps(shown)
    assert (await desk.client.get("/api/v1/escalations", headers=GOOD)).json() == []
    again = await desk.client.post(url, json=body, headers=desk.agent)
    assert again.status_code == 409, again.text
    policy_decided = await desk.client.post(f"/api/v1/cases/{desk.decided}/decision", json=body,
                                            headers=desk.agent)  # fmt: skip
    assert policy_decided.status_code == 409


async def test_unknown_cases_and_bad_decisions(desk: Desk) -> None:
    assert (await desk.client.get("/api/v1/cases/nope", headers=GOOD)).status_code == 404
    body = {"decline_reason": {"code": "agent_declined", "text": "Not covered."}}
    r = await desk.client.post("/api/v1/cases/nope/decision", json=body, headers=desk.agent)
    assert r.status_code == 404
    url = f"/api/v1/cases/{desk.escalated}/decision"
    neither = await desk.client.post(url, json={}, headers=desk.agent)
    assert neither.status_code == 422
    bad_remedy = await desk.client.post(url, json={"remedies": [{"type": "refund"}]}, headers=desk.agent)
    assert bad_remedy.status_code == 422
    declined = await desk.client.post(url, json=body, headers=desk.agent)
    assert declined.status_code == 200, declined.text
    assert declined.json()["outcome"] == "declined"


async def test_a_case_is_shown_decided_and_audited_by_its_reference(desk: Desk, pool: asyncpg.Pool) -> None:
    ref = case_reference(desk.escalated)
    esc = (await desk.client.get("/api/v1/escalations", headers=GOOD)).json()
    assert [(c["case_id"], c["reference"]) for c in esc] == [(desk.escalated, ref)]
    shown = await desk.client.get(f"/api/v1/cases/{ref.lower()}", headers=GOOD)
    assert shown.status_code == 200, shown.text
    assert (shown.json()["case"]["case_id"], shown.json()["case"]["reference"]) == (desk.escalated, ref)
    body = {"decline_reason": {"code": "agent_declined", "text": "Not covered."}}
    made = await desk.client.post(f"/api/v1/cases/{ref}/decision", json=body, headers=desk.agent)
    assert made.status_code == 200, made.text
    assert made.json()["case_id"] == desk.escalated
    supervisor = await sign_in(pool, "sam", "supervisor")
    trail = (await desk.client.get("/api/v1/audit", params={"case_id": ref}, headers=supervisor)).json()
    assert [(e["action"], e["case_id"]) for e in trail] == [("case.read", desk.escalated),
                                                             ("decision.made", desk.escalated)]  # fmt: skip
    assert (await desk.client.get(f"/api/v1/cases/{case_reference('nope')}", headers=GOOD)).status_code == 404


async def test_a_reference_two_cases_share_is_refused_with_both_ids(desk: Desk, pool: asyncpg.Pool) -> None:
    await every_case_has_key_7(pool)
    r = await desk.client.get(f"/api/v1/cases/{spell(7)}", headers=GOOD)
    assert r.status_code == 409
    assert desk.escalated in r.json()["detail"]
    assert desk.decided in r.json()["detail"]
    body = {"decline_reason": {"code": "agent_declined", "text": "Not covered."}}
    decide = await desk.client.post(f"/api/v1/cases/{spell(7)}/decision", json=body, headers=desk.agent)
    assert decide.status_code == 409, decide.text
    assert (await desk.client.get(f"/api/v1/cases/{desk.decided}", headers=GOOD)).status_code == 200


async def test_the_recovery_process_serves_the_ops_api_next_to_its_probes(settings_env: dict[str, str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k.lower(): v for k, v in settings_env.items()}
    settings = RecoverySettings(**env, http_host="127.0.0.1", http_port=port, ops_api_token=TOKEN,  # type: ignore[arg-type]
                                http_docs="token")  # fmt: skip
    runtime = Runtime(settings)
    await runtime.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(50):
                try:
                    health = await client.get("/healthz")
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.1)
            else:
                pytest.fail(f"the recovery process never answered on port {port} within 5 s")
            assert health.status_code == 200
            assert (await client.get("/api/v1/escalations")).status_code == 401
            r = await client.get("/api/v1/escalations", headers=GOOD)
            assert r.status_code == 200
            assert r.json() == []
            assert (await client.get("/openapi.json")).status_code == 401
            doc = (await client.get("/openapi.json", headers=GOOD)).json()
            assert "/api/v1/cases/{case_id}/decision" in doc["paths"]
            # A decision larger than HTTP_MAX_BODY_BYTES is refused before it is parsed.
            big = {"agent_id": "maria", "note": "x" * (settings.http_max_body_bytes + 1)}
            r = await client.post("/api/v1/cases/none/decision", json=big, headers=GOOD)
            assert r.status_code == 413
            assert r.json()["detail"].startswith("request body too large")
    finally:
        await runtime.close()
