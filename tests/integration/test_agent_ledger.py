"""A person's decision is held to the charge's ledger on the real servers: the ops API of a
running recovery runtime answers 422 naming the field, and `recoveryctl cases decide`
prints one line naming it (no traceback); neither records anything."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from services.common.clock import ManualClock
from services.common.records import InboundRecord
from services.common.settings import CommonSettings
from services.recovery.application import RecoveryService
from services.recovery.bootstrap import Runtime
from services.recovery.domain.policy import load_policy
from services.recovery.domain.roster import load_roster
from services.recovery.settings import RecoverySettings
from tests.helpers import ROOT, VOUCHERS, cloudevent, sign_in

NOW = datetime.now(UTC)
# Billing's ids are any text; brackets in one must reach the terminal as they are.
LAMP = "ch-[lamp]"
TOKEN = "ledger-ops-token-52e8c1f0a93d7b46"
GOOD = {"Authorization": f"Bearer {TOKEN}"}


def _record(event: dict[str, Any]) -> InboundRecord:
    return InboundRecord("in", 0, 0, str(event["subject"]).encode(), json.dumps(event).encode())


async def _escalated_dispute(pool: asyncpg.Pool) -> str:
    """A dispute of a 40.00 USD purchase billing has refunded 15.00 of: a person decides it."""
    charge = cloudevent("billing.charge.posted.v1", {
        "charge_id": LAMP, "customer_id": "c-lamp", "amount": "40.00", "currency": "USD",
        "kind": "purchase", "posted_at": (NOW - timedelta(days=2)).isoformat(),
    }, "c-lamp")  # fmt: skip
    refund = cloudevent("billing.charge.refunded.v1", {
        "charge_id": LAMP, "refund_id": "rf-1", "amount": "15.00", "currency": "USD",
        "refunded_at": (NOW - timedelta(days=1)).isoformat(),
    }, "c-lamp")  # fmt: skip
    dispute = cloudevent("complaint.filed.v1", {
        "complaint_id": "cmp-lamp", "customer": {"id": "c-lamp", "name": "Ana", "email": "ana@example.com"},
        "channel": "web", "category": "charge_disputed", "charge_id": LAMP,
        "filed_at": (NOW - timedelta(minutes=5)).isoformat(),
    }, "c-lamp")  # fmt: skip
    service = RecoveryService(pool, CommonSettings(), load_policy(), load_roster(), ManualClock(NOW),
                              vouchers=VOUCHERS)  # fmt: skip
    result = await service.handle_records([_record(charge), _record(refund), _record(dispute)])
    assert result.escalations == 1
    case_id: str = await pool.fetchval("SELECT case_id FROM rm_cases WHERE status = 'escalated'")
    return case_id


async def _decisions(pool: asyncpg.Pool) -> int:
    n: int = await pool.fetchval("SELECT count(*) FROM events WHERE event_type = 'recovery.decision.made.v1'")
    return n


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_the_ops_api_refuses_a_remedy_the_ledger_refuses_with_422_and_the_field(
    pool: asyncpg.Pool, settings_env: dict[str, str]
) -> None:
    case_id = await _escalated_dispute(pool)
    port = _free_port()
    env = {k.lower(): v for k, v in settings_env.items()}
    runtime = Runtime(RecoverySettings(**env, http_host="127.0.0.1", http_port=port, ops_api_token=TOKEN))  # type: ignore[arg-type]
    await runtime.start()
    url = f"http://127.0.0.1:{port}/api/v1/cases/{case_id}/decision"
    maria = await sign_in(pool, "maria", "agent")

    def body(**remedy: str) -> dict[str, Any]:
        return {"remedies": [{"type": "refund", **remedy}]}

    try:
        async with httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(retries=20)) as client:
            refused = {
                "remedies[0].amount": body(amount="25.01", currency="USD", charge_id=LAMP),
                "remedies[0].currency": body(amount="5.00", currency="EUR"),
                "remedies[0].charge_id": body(amount="5.00", currency="USD", charge_id="ch-other"),
            }
            for field, request in refused.items():
                r = await client.post(url, json=request, headers=maria)
                assert r.status_code == 422, r.text
                assert r.json()["field"] == field
                assert r.json()["detail"].startswith(f"{field}: ")
            assert await _decisions(pool) == 0
            ok = await client.post(url, json=body(amount="25.00", currency="USD"), headers=maria)
            assert ok.status_code == 200, ok.text
            assert [(x["charge_id"], x["amount"]) for x in ok.json()["remedies"]] == [(LAMP, "25.00")]
    finally:
        await runtime.close()


def _recoveryctl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "recoveryctl"
    return subprocess.run([str(exe), *args], env={**os.environ, **env, "COLUMNS": "60"}, cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


async def test_recoveryctl_refuses_a_remedy_the_ledger_refuses_in_one_line_naming_the_field(
    pool: asyncpg.Pool, settings_env: dict[str, str]
) -> None:
    case_id = await _escalated_dispute(pool)
    await sign_in(pool, "maria", "agent")
    over = _recoveryctl(settings_env, "cases", "decide", case_id, "--agent", "maria", "--refund", "25.01 USD")
    assert over.returncode == 1, over.stdout + over.stderr
    lines = (over.stdout + over.stderr).strip().splitlines()
    assert len(lines) == 1, lines  # even on a 60-column terminal
    assert lines[0].startswith("remedies[0].amount: refunds and waivers of USD 25.01 pass the USD 25.00")
    assert f"remains on charge {LAMP} (USD 40.00 charged, USD 15.00 refunded by billing)" in lines[0]
    other = _recoveryctl(settings_env, "cases", "decide", case_id, "--agent", "maria", "--refund", "5.00 EUR")
    assert (other.returncode, other.stdout.strip().split(":")[0]) == (1, "remedies[0].currency")
    assert await _decisions(pool) == 0
    unset = {k: v for k, v in settings_env.items() if k != "RECOVERY_VOUCHER_SECRET"}
    no_secret = _recoveryctl(unset, "cases", "decide", case_id, "--agent", "maria", "--refund", "5.00 USD")
    assert no_secret.returncode == 1
    assert "RECOVERY_VOUCHER_SECRET is not set" in no_secret.stdout
    assert "Traceback" not in no_secret.stdout + no_secret.stderr
    done = _recoveryctl(settings_env, "cases", "decide", case_id, "--agent", "maria", "--refund", "25.00 USD")
    assert done.returncode == 0, done.stdout + done.stderr
    assert await _decisions(pool) == 1


async def test_recoveryctl_holds_an_agent_over_the_limit_for_a_different_supervisor(
    pool: asyncpg.Pool, settings_env: dict[str, str], tmp_path: Path
) -> None:
    case_id = await _escalated_dispute(pool)
    policy = tmp_path / "policy.toml"
    shipped = (ROOT / "services/recovery/policy/default.toml").read_text()
    policy.write_text(shipped.replace('USD = "500.00"', 'USD = "10.00"', 1))
    env = {**settings_env, "RECOVERY_POLICY_FILE": str(policy)}
    assert _recoveryctl(env, "agents", "add", "maria", "--role", "agent").returncode == 0
    assert _recoveryctl(env, "agents", "add", "sam", "--role", "supervisor").returncode == 0
    assert _recoveryctl(env, "agents", "add", "audrey", "--role", "auditor").returncode == 0
    audit = _recoveryctl(env, "cases", "decide", case_id, "--as", "audrey", "--refund", "5.00 USD")
    assert (audit.returncode, audit.stdout.strip()) == (1, "role auditor may not decide")
    held = _recoveryctl(env, "cases", "decide", case_id, "--as", "maria", "--refund", "20.00 USD")
    assert held.returncode == 0, held.stdout + held.stderr
    assert held.stdout.startswith("pending approval by a supervisor")
    assert await _decisions(pool) == 0
    own = _recoveryctl(env, "cases", "approve", case_id, "--as", "maria")
    assert (own.returncode, own.stdout.strip()) == (1, "role agent may not approve")
    approved = _recoveryctl(env, "cases", "approve", case_id, "--as", "sam")
    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert "by agent:maria" in approved.stdout
    assert await _decisions(pool) == 1
    listed = _recoveryctl(env, "agents", "list")
    assert "audrey" in listed.stdout
    assert _recoveryctl(env, "agents", "disable", "sam").returncode == 0
    token = _recoveryctl(env, "agents", "token", "sam")
    assert token.returncode == 1  # a disabled person gets no sign-in
