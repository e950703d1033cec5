"""`recoveryctl` on real PostgreSQL: a case named by its reference wherever an id is taken,
ids and references whole on a 60- and a 200-column terminal, and --json on the lists."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg

from services.recovery.domain.reference import case_reference
from tests.integration.test_agent_ledger import _escalated_dispute

ROOT = Path(__file__).resolve().parents[2]


def _ctl(env: dict[str, str], *args: str, columns: int = 200, code: int = 0) -> str:
    exe = Path(sys.executable).parent / "recoveryctl"
    done = subprocess.run([str(exe), *args], env={**os.environ, **env, "COLUMNS": str(columns)}, cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == code, f"recoveryctl {' '.join(args)}: {done.returncode}\n{done.stdout}{done.stderr}"
    assert "Traceback" not in done.stdout + done.stderr
    return done.stdout


def _whole_on_a_line(text: str, *values: str) -> None:
    for value in values:
        assert any(value in line for line in text.splitlines()), (value, text)


async def test_an_operator_works_a_case_by_its_reference_at_any_width(
    pool: asyncpg.Pool, settings_env: dict[str, str], tmp_path: Path
) -> None:
    case_id = await _escalated_dispute(pool)
    ref = case_reference(case_id)
    policy = tmp_path / "policy.toml"
    shipped = (ROOT / "services/recovery/policy/default.toml").read_text()
    policy.write_text(shipped.replace('USD = "500.00"', 'USD = "10.00"', 1))  # maria's refund needs approval
    env = {**settings_env, "RECOVERY_POLICY_FILE": str(policy)}
    for columns in (60, 200):
        _whole_on_a_line(_ctl(env, "cases", "list", columns=columns), case_id, ref)
    listed = json.loads(_ctl(env, "cases", "list", "--json", columns=60))
    assert [(c["case_id"], c["reference"], c["status"]) for c in listed] == [(case_id, ref, "escalated")]
    assert json.loads(_ctl(env, "cases", "list", "--all", "--json"))[0]["case_id"] == case_id

    shown = _ctl(env, "cases", "show", ref.lower().replace("-", ""), columns=60)
    _whole_on_a_line(shown, case_id, ref, "recovery.case.escalated.v1")
    assert _ctl(env, "cases", "show", "RC-0000-0000-0001", code=1).strip() == "no case RC-0000-0000-0001"

    _ctl(env, "agents", "add", "maria", "--role", "agent")
    _ctl(env, "agents", "add", "sam", "--role", "supervisor", "--name", "Sam Supervisor")
    people = json.loads(_ctl(env, "agents", "list", "--json"))
    assert {p["id"]: p for p in people}["sam"] == {"id": "sam", "role": "supervisor", "name": "Sam Supervisor",
                                                   "enabled": True}  # fmt: skip
    _whole_on_a_line(_ctl(env, "agents", "list", columns=60), "maria", "sam")

    held = _ctl(env, "cases", "decide", ref, "--as", "maria", "--refund", "20.00 usd", columns=60)
    assert held.startswith("pending approval by a supervisor")
    pending = json.loads(_ctl(env, "cases", "approvals", "--json"))
    assert [(p["case_id"], p["reference"], p["proposed_by"]) for p in pending] == [(case_id, ref, "agent:maria")]
    for columns in (60, 200):
        _whole_on_a_line(_ctl(env, "cases", "approvals", columns=columns), case_id, ref, "agent:maria")
    approved = _ctl(env, "cases", "approve", ref, "--as", "sam", columns=60)
    assert "by agent:maria" in approved
    assert json.loads(_ctl(env, "cases", "approvals", "--json")) == []

    trail = json.loads(_ctl(env, "audit", "--case", ref, "--json"))
    assert {(e["action"], e["case_id"]) for e in trail} >= {("decision.proposed", case_id),
                                                             ("decision.approved", case_id)}  # fmt: skip
    _whole_on_a_line(_ctl(env, "audit", "--case", ref, columns=60), case_id)
