"""The audit trail on real PostgreSQL: a person's decision is recorded (who, when, what, from
which client) in the decision's own transaction, and does not happen when its record cannot
be written; every read of a case is recorded before it is answered (503 when it cannot be);
concurrent records on one day's stream are all kept; auditors and supervisors read the trail
over the API, agents do not; `recoveryctl audit` filters by case, person and time."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from typer.testing import CliRunner, Result

from services.recovery import audit
from services.recovery.audit import AUDIT_TYPE, AuditRecord, Client
from services.recovery.entrypoints.cli import app
from tests.helpers import sign_in
from tests.integration import test_four_eyes
from tests.integration.test_four_eyes import NOW, Desk

desk = test_four_eyes.desk  # a 40.00 USD dispute a person decides, under a 10.00 USD approval limit
MADE = "recovery.decision.made.v1"
_FAIL_AUDIT = """
CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'audit refused for the test'; END $$;
CREATE TRIGGER refuse_audit BEFORE INSERT ON events FOR EACH ROW
    WHEN (NEW.event_type = 'recovery.audit.recorded.v1') EXECUTE FUNCTION refuse_audit();
"""


async def _trail(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT stream_id, version, data, occurred_at FROM events WHERE event_type = $1 ORDER BY global_position",
        AUDIT_TYPE,
    )
    return [{"stream": r["stream_id"], "version": r["version"], "occurred_at": r["occurred_at"],
             **json.loads(r["data"])} for r in rows]  # fmt: skip


async def test_a_decision_is_recorded_with_who_when_what_and_client_in_its_own_transaction(
    desk: Desk, pool: asyncpg.Pool
) -> None:
    body = {"remedies": [{"type": "refund", "amount": "5.00", "currency": "USD"}], "note": "Ana's bank: 5 back"}
    headers = {**desk.supervisor, "User-Agent": "desk/1.0\x1b[31m" + "x" * 500}
    made = await desk.client.post(desk.url, json=body, headers=headers)
    assert made.status_code == 200, made.text
    [entry] = await _trail(pool)
    assert entry["stream"] == f"audit-{NOW.date().isoformat()}"
    assert entry["occurred_at"] == NOW == datetime.fromisoformat(entry["at"])  # the service clock
    assert (entry["person"], entry["role"], entry["action"], entry["case_id"]) == (
        "sam", "supervisor", "decision.made", desk.case_id,
    )  # fmt: skip
    assert entry["note"] is True
    client = entry["client"]
    assert (client["kind"], client["address"]) == ("http", "127.0.0.1")
    assert client["agent"].startswith("desk/1.0[31m")  # no control characters
    assert len(client["agent"]) == audit.MAX_USER_AGENT  # bounded
    assert "Ana" not in json.dumps(entry, default=str)  # ids only: not the note, no customer's name
    # One transaction wrote the decision and its record.
    xids = await pool.fetch("SELECT DISTINCT xmin::text FROM events WHERE event_type = ANY($1::text[])",
                            [MADE, AUDIT_TYPE])  # fmt: skip
    assert len(xids) == 1


async def test_a_decision_whose_record_cannot_be_written_does_not_happen_and_reads_answer_503(
    desk: Desk, pool: asyncpg.Pool
) -> None:
    await pool.execute(_FAIL_AUDIT)
    body = {"remedies": [{"type": "refund", "amount": "5.00", "currency": "USD"}]}
    with pytest.raises(asyncpg.PostgresError, match="audit refused"):
        await desk.client.post(desk.url, json=body, headers=desk.supervisor)
    assert await pool.fetchval("SELECT count(*) FROM events WHERE event_type = $1", MADE) == 0
    assert await pool.fetchval("SELECT status FROM rm_cases WHERE case_id = $1", desk.case_id) == "escalated"
    read = await desk.client.get(f"/api/v1/cases/{desk.case_id}", headers=desk.agent)
    assert read.status_code == 503, read.text
    assert "case" not in read.json()

    await pool.execute("DROP TRIGGER refuse_audit ON events")
    assert (await desk.client.get(f"/api/v1/cases/{desk.case_id}", headers=desk.agent)).status_code == 200
    assert (await desk.client.post(desk.url, json=body, headers=desk.supervisor)).status_code == 200


async def test_reads_of_a_case_are_recorded_and_only_auditors_and_supervisors_read_the_trail(
    desk: Desk, pool: asyncpg.Pool
) -> None:
    assert (await desk.client.get(f"/api/v1/cases/{desk.case_id}", headers=desk.agent)).status_code == 200
    assert (await desk.client.get("/api/v1/escalations", headers=desk.agent)).status_code == 200
    assert (await desk.client.get("/api/v1/cases/nope", headers=desk.agent)).status_code == 404  # nothing shown
    trail = await _trail(pool)
    assert [(e["person"], e["role"], e["action"], e["case_id"]) for e in trail] == [
        ("maria", "agent", "case.read", desk.case_id),
        ("maria", "agent", "escalations.list", None),
    ]

    assert (await desk.client.get("/api/v1/audit", headers=desk.agent)).status_code == 403
    auditor = await sign_in(pool, "audrey", "auditor")
    for headers in (auditor, desk.supervisor):
        got = await desk.client.get("/api/v1/audit", params={"case_id": desk.case_id, "person": "maria"},
                                    headers=headers)  # fmt: skip
        assert got.status_code == 200, got.text
        [read] = got.json()
        assert (read["person"], read["action"], read["client"]) == ("maria", "case.read", "http 127.0.0.1 python-httpx/"
                                                                    + read["client"].rsplit("/", 1)[1])  # fmt: skip


async def test_concurrent_reads_on_one_days_stream_are_all_recorded(desk: Desk, pool: asyncpg.Pool) -> None:
    url = f"/api/v1/cases/{desk.case_id}"
    answers = await asyncio.gather(*(desk.client.get(url, headers=desk.agent) for _ in range(20)))
    assert {a.status_code for a in answers} == {200}
    trail = await _trail(pool)
    assert len({e["stream"] for e in trail}) == 1
    assert [e["version"] for e in trail] == list(range(1, 21))


def _cli(env: dict[str, str], *args: str) -> Result:
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result


async def test_recoveryctl_audit_filters_by_case_person_and_since(
    pool: asyncpg.Pool, settings_env: dict[str, str]
) -> None:
    now = datetime.now(UTC)
    for at, person, case in ((now - timedelta(hours=3), "maria", "case-a"), (now - timedelta(minutes=10), "maria",
                             "case-b"), (now - timedelta(minutes=5), "sam", "case-a")):  # fmt: skip
        await audit.record(pool, AuditRecord(at, person, "agent", "case.read", Client.http("10.0.0.7", "ua"), case))
    env = {**settings_env, "COLUMNS": "200"}  # DATABASE_URL: the services' role reads the trail, records changes

    def rows(*args: str) -> list[tuple[str | None, str | None]]:
        out = json.loads(_cli(env, "audit", "--json", *args).stdout)
        return [(r["person"], r["case_id"]) for r in out]

    assert await asyncio.to_thread(rows) == [("maria", "case-a"), ("maria", "case-b"), ("sam", "case-a")]
    assert await asyncio.to_thread(rows, "--case", "case-a") == [("maria", "case-a"), ("sam", "case-a")]
    assert await asyncio.to_thread(rows, "--person", "maria") == [("maria", "case-a"), ("maria", "case-b")]
    assert await asyncio.to_thread(rows, "--since", "1h") == [("maria", "case-b"), ("sam", "case-a")]
    assert await asyncio.to_thread(rows, "--limit", "1") == [("sam", "case-a")]  # the newest

    # The people's changes on the command line are recorded, as its operator; a table by default.
    await asyncio.to_thread(_cli, env, "agents", "add", "nina", "--role", "agent")
    token = (await asyncio.to_thread(_cli, env, "agents", "token", "nina")).stdout.strip()
    table = (await asyncio.to_thread(_cli, env, "audit", "--since", "1m")).stdout
    for shown in ("person.added", "person.token_issued", "operator"):
        assert shown in table
    assert token not in table
    [added, issued] = [e for e in await _trail(pool) if e["action"].startswith("person.")]
    assert (added["person"], added["target"], added["client"]["kind"]) == (None, "nina as agent", "cli")
    assert issued["target"] == "nina"
