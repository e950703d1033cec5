"""The escalation desk's answer time at scale: the queue's first page and a case page, asked
through the desk's HTTP routes by a signed-in person, with 10,000 open escalations and a
million decided cases in the store.

A few escalations are made by the real ``RecoveryService`` in-process (their charges, their
event streams with the customer's data sealed, their apology), so the case page reads what
the service records. The bulk is written straight into the read-model tables with
``generate_series``: each open escalation its row in ``rm_cases``, a charge and the
customer's earlier charges of that kind in ``rm_charges``, and a copy of one of the real
streams in ``events``; each decided case its row, its charge and one event. The pages are
then asked for through an in-process ASGI client (the app the service mounts: the desk's
routes, guards and templates), each answer timed from request to last byte.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI
from pydantic import SecretStr

from bench.registry import Context, Row
from bench.services import VOUCHERS, percentile
from services.common.clock import ManualClock
from services.common.db import create_pool
from services.common.http import probes_app
from services.common.records import InboundRecord
from services.recovery.application import RecoveryService, case_stream
from services.recovery.desk.guard import SESSION
from services.recovery.desk.web import Desk, mount_desk
from services.recovery.domain import load_policy, load_roster
from services.recovery.identity import Authenticator, People
from services.recovery.settings import RecoverySettings

NAME = "desk"
DESCRIPTION = "escalation desk: queue first page and case page answer time, 10k open / 1M decided cases"
ORDER = 60
TARGET_MS = 200
TEMPLATES = 8  # real escalations whose streams the bulk copies
HISTORY = 11  # earlier charges of the same kind per open escalation's customer

_OPEN_CASES = """
INSERT INTO rm_cases (case_id, customer_id, complaint_id, category, status, owner_id, priority, assignee, reason,
                      sla_deadline, due_by, contacts, opened_at, updated_at, version, charge_id, order_id,
                      claimed_amount, currency)
SELECT 'bq-' || i, 'bq-c-' || i, 'bq-cmp-' || i,
       (ARRAY['service_failure','billing_error','delivery_failed'])[1 + i % 3], 'escalated', 'owner-' || (i % 25),
       CASE WHEN i % 10 = 0 THEN 'urgent' WHEN i % 10 < 4 THEN 'high' ELSE 'normal' END,
       CASE WHEN i % 4 = 0 THEN NULL ELSE 'owner-' || (i % 25) END, 'over the agent limit',
       $2::timestamptz + (i % 2880) * interval '1 minute', $2::timestamptz + (i % 1440 - 120) * interval '1 minute',
       1, $2::timestamptz - interval '1 hour', $2::timestamptz - interval '1 hour', 4, 'bq-ch-' || i || '-0',
       'bq-ord-' || i, 20 + i % 500, 'USD'
FROM generate_series(1, $1::int) AS i
"""
_OPEN_CHARGES = """
INSERT INTO rm_charges (charge_id, customer_id, kind, amount, currency, order_id, posted_at)
SELECT 'bq-ch-' || i || '-' || j, 'bq-c-' || i, 'purchase', CASE WHEN j = 0 THEN 2000 ELSE 30 + (i + j) % 7 END,
       'USD', 'bq-ord-' || i, $2::timestamptz - j * interval '30 days'
FROM generate_series(1, $1::int) AS i, generate_series(0, $3::int) AS j
"""
_DECIDED_CASES = """
INSERT INTO rm_cases (case_id, customer_id, complaint_id, category, status, owner_id, priority, sla_deadline,
                      contacts, opened_at, updated_at, decided_at, decided_by, rule, outcome, within_sla, version,
                      charge_id, order_id, claimed_amount, currency)
SELECT 'bd-' || i, 'bd-c-' || (i % 200000), 'bd-cmp-' || i,
       (ARRAY['service_failure','billing_error','delivery_failed'])[1 + i % 3], 'decided', 'owner-' || (i % 25),
       CASE WHEN i % 50 = 0 THEN 'high' END, at + interval '24 hours', 1, at, at + interval '1 second',
       at + interval '1 second', 'recovery-service', 'micro_claim', 'resolved', true, 3, 'bd-ch-' || i,
       'bd-ord-' || i, 5 + i % 40, 'USD'
FROM (SELECT i, $2::timestamptz - (i % 525600) * interval '1 minute' AS at
      FROM generate_series(1, $1::int) AS i) AS s
"""
_DECIDED_CHARGES = """
INSERT INTO rm_charges (charge_id, customer_id, kind, amount, currency, order_id, posted_at)
SELECT 'bd-ch-' || i, 'bd-c-' || (i % 200000), 'purchase', 5 + i % 40, 'USD', 'bd-ord-' || i,
       $2::timestamptz - (i % 525600) * interval '1 minute' - interval '1 day'
FROM generate_series(1, $1::int) AS i
"""
# Each open escalation gets a copy of one real stream (its case id in the data replaced).
_OPEN_EVENTS = """
INSERT INTO events (global_position, stream_id, version, event_id, event_type, data, metadata, occurred_at)
SELECT $3::bigint + row_number() OVER (ORDER BY i, t.version), $4 || 'bq-' || i, t.version, t.event_id || '-bq-' || i,
       t.event_type, CASE WHEN t.data ? 'case_id' THEN jsonb_set(t.data, '{case_id}', to_jsonb('bq-' || i))
                          ELSE t.data END, t.metadata, t.occurred_at
FROM generate_series(1, $1::int) AS i
JOIN events t ON t.stream_id = ($2::text[])[1 + i % array_length($2::text[], 1)]
"""
_DECIDED_EVENTS = """
INSERT INTO events (global_position, stream_id, version, event_id, event_type, data, occurred_at)
SELECT $2::bigint + i, $3 || 'bd-' || i, 1, 'bd-ev-' || i, 'recovery.case.opened.v1',
       jsonb_build_object('case_id', 'bd-' || i), $4::timestamptz - (i % 525600) * interval '1 minute'
FROM generate_series(1, $1::int) AS i
"""


def _event(type_: str, subject: str, data: dict[str, Any], at: datetime) -> bytes:
    return json.dumps({"specversion": "1.0", "id": str(uuid.uuid4()), "source": "bench", "type": type_,
                       "time": at.isoformat(), "subject": subject, "datacontenttype": "application/json",
                       "data": data}).encode()  # fmt: skip


async def _real_escalations(
    pool: asyncpg.Pool, service: RecoveryService, settings: RecoverySettings, now: datetime
) -> list[str]:
    """:data:`TEMPLATES` escalations made by the service, each with a charge far above the
    customer's usual and three earlier ones; their case ids."""
    charges, complaints = settings.topic("charges"), settings.topic("complaints")
    posted: list[InboundRecord] = []
    filed: list[InboundRecord] = []
    for k in range(TEMPLATES):
        customer = f"bt-c-{k}"
        for j, amount in enumerate(("31.00", "32.00", "33.00", "2000.00")):
            charge = {"charge_id": f"bt-ch-{k}-{j}", "customer_id": customer, "amount": amount, "currency": "USD",
                    "kind": "purchase", "description": "Broadband repair visit",
                    "posted_at": (now - timedelta(days=90 - 30 * j)).isoformat()}  # fmt: skip
            posted.append(InboundRecord(charges, 0, len(posted), customer.encode(),
                                        _event("billing.charge.posted.v1", customer, charge, now)))  # fmt: skip
        data = {"complaint_id": f"bt-cmp-{k}", "charge_id": f"bt-ch-{k}-3", "channel": "phone",
                "customer": {"id": customer, "name": "Ana Privada", "email": f"{customer}@example.com",
                             "locale": ("es-CO", "en-US")[k % 2]},
                "category": "service_failure", "claimed_amount": "2000.00", "currency": "USD",
                "description": "The repair never happened.",
                "filed_at": (now - timedelta(minutes=30)).isoformat()}  # fmt: skip
        filed.append(InboundRecord(complaints, 0, k, customer.encode(),
                                   _event("complaint.filed.v1", customer, data, now)))  # fmt: skip
    await service.handle_records(posted)
    await service.handle_records(filed)
    rows = await pool.fetch(
        "SELECT case_id FROM rm_cases WHERE customer_id LIKE 'bt-c-%' AND status = 'escalated' ORDER BY case_id"
    )
    if len(rows) != TEMPLATES:
        raise RuntimeError(f"{len(rows)} of {TEMPLATES} template complaints escalated")
    return [r["case_id"] for r in rows]


async def _seed(ctx: Context, pool: asyncpg.Pool, templates: list[str], open_n: int, decided_n: int,
                now: datetime) -> None:  # fmt: skip
    prefix = case_stream("")
    steps = [
        ("open escalations: rm_cases", _OPEN_CASES, (open_n, now)),
        ("open escalations: rm_charges", _OPEN_CHARGES, (open_n, now, HISTORY)),
        ("decided cases: rm_cases", _DECIDED_CASES, (decided_n, now)),
        ("decided cases: rm_charges", _DECIDED_CHARGES, (decided_n, now)),
    ]
    with ctx.progress(f"seed {open_n:,} open / {decided_n:,} decided", total=len(steps) + 2) as bar:
        for _, sql, args in steps:
            await pool.execute(sql, *args)
            bar.advance(1)
        top = await pool.fetchval("SELECT coalesce(max(global_position), 0) FROM events")
        await pool.execute(_OPEN_EVENTS, open_n, [case_stream(c) for c in templates], top, prefix)
        bar.advance(1)
        top = await pool.fetchval("SELECT coalesce(max(global_position), 0) FROM events")
        await pool.execute(_DECIDED_EVENTS, decided_n, top, prefix, now)
        await pool.execute("ANALYZE")
        bar.advance(1)


def _app(pool: asyncpg.Pool, service: RecoveryService, settings: RecoverySettings) -> FastAPI:
    async def ready() -> bool:
        return True

    app = probes_app(ready, "recovery-service", "bench")
    mount_desk(app, Desk(settings, lambda: pool, lambda: service, lambda: None, Authenticator(lambda: pool)))
    return app


async def _timed(client: httpx.AsyncClient, urls: list[str], must_contain: str) -> list[float]:
    out = []
    for url in urls:
        started = time.perf_counter()
        answer = await client.get(url)
        out.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 200 or must_contain not in answer.text:
            raise RuntimeError(f"{url}: {answer.status_code} {answer.text[:300]}")
    return out


def _rows(what: str, ms: list[float], load: str) -> list[Row]:
    p50, p95 = percentile(ms, 50), percentile(ms, 95)
    verdict = "meets" if p95 < TARGET_MS else "MISSES"
    return [
        Row(f"{what}, median", p50, "ms", f"{len(ms)} requests; {load}"),
        Row(f"{what}, p95", p95, "ms", f"{verdict} the {TARGET_MS} ms target"),
    ]


async def run(ctx: Context) -> list[Row]:
    open_n, decided_n = ctx.scale(10_000, quick=1_000), ctx.scale(1_000_000, quick=20_000)
    requests = ctx.scale(200, quick=40)
    url = await ctx.fresh_database()
    settings = RecoverySettings.model_validate(
        {**ctx.settings.model_dump(), "database_url": SecretStr(url), "database_pool_min": 2, "database_pool_max": 4}
    )
    pool = await create_pool(settings)
    try:
        now = datetime.now(UTC)
        service = RecoveryService(pool, settings, load_policy(), load_roster(), ManualClock(now), vouchers=VOUCHERS)
        templates = await _real_escalations(pool, service, settings, now)
        await _seed(ctx, pool, templates, open_n, decided_n, now)
        await People(pool).add("bench-ana", "agent")
        token = await People(pool).issue_token("bench-ana")
        await pool.execute("UPDATE rm_cases SET assignee = 'bench-ana' WHERE case_id IN ('bq-1', 'bq-2', 'bq-3')")
        transport = httpx.ASGITransport(app=_app(pool, service, settings))
        async with httpx.AsyncClient(transport=transport, base_url="http://desk", cookies={SESSION: token}) as client:
            await _timed(client, ["/desk/queue"] * 5 + [f"/desk/cases/{c}" for c in templates], "Case")  # warm up
            rng = random.Random(7)
            with ctx.progress("queue, first page", total=requests) as bar:
                queue_ms = await _timed(client, ["/desk/queue"] * requests, 'data-case="bq-')
                bar.advance(requests)
            cases = [f"/desk/cases/bq-{rng.randint(1, open_n)}" for _ in range(requests)]
            with ctx.progress("case pages", total=requests) as bar:
                case_ms = await _timed(client, cases, 'id="timeline"')
                bar.advance(requests)
        one, five, _ = os.getloadavg()
        load = f"load {one:.2f} (5 min {five:.2f}) on {os.cpu_count()} CPUs"
        sizes = f"{open_n:,} open, {decided_n:,} decided"
        return [*_rows(f"queue first page ({sizes})", queue_ms, load), *_rows("case page", case_ms, load)]
    finally:
        await pool.close()
