"""The recovery read models in PostgreSQL: the queries decisions need, and the projection
that keeps the tables in step with the events (same transaction; replayable by a rebuild)."""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from services.common.contract.events import ChargePosted, ChargeRefunded, DecisionMade, EventData
from services.common.db import json_rows
from services.common.eventstore import RecordedEvent
from services.common.eventstore.postgres import SELECT_EVENTS, rows_to_events
from services.common.eventstore.shred import Keyring
from services.recovery.domain.anomaly import CROSS_CUSTOMER_KINDS
from services.recovery.domain.case import Case
from services.recovery.domain.facts import NO_HISTORY, CustomerHistory
from services.recovery.domain.guardrail import is_concession
from services.recovery.domain.policy import Policy
from services.recovery.domain.sla import pending_timers
from services.recovery.domain.usual import Usual, Window

# A customer's charges, for a batch's customers, are one LATERAL index probe per customer.
# The plain form, ``customer_id = ANY($1)``, is planned for the whole array at once, and on
# a table whose statistics are young (a new database taking its first load, before
# autovacuum has analysed it) the planner takes 500 customers to match most rows: a scan,
# growing with the table. With ``DATABASE_PLAN_CACHE_MODE=auto`` a connection keeps the
# generic plan it made after a few runs, and one made at 1,000 rows compares every row with
# every key as the table grows: 0.11 s for 500 keys over 20,000 rows, 0.86 s over 100,000.
# The probe stays near 2 ms at any size, in either mode; OFFSET 0 keeps the subquery from
# being flattened into a join, which would be a hash join over the whole table.
CUSTOMER_CHARGES = (
    "SELECT c.customer_id, c.kind, c.currency, c.charge_id, c.amount FROM unnest($1::text[]) AS k(id),"
    " LATERAL (SELECT * FROM rm_charges c WHERE c.customer_id = k.id OFFSET 0) AS c"
)
# Concessions in the window (the primary key's first column, an index probe already) and
# the last owner, in one round trip.
CUSTOMER_HISTORIES = (
    "SELECT customer_id, decided_at, NULL::text FROM rm_concessions"
    " WHERE customer_id = ANY($1::text[]) AND decided_at >= $2"
    " UNION ALL SELECT customer_id, NULL::timestamptz, owner_id FROM rm_customer_owners"
    " WHERE customer_id = ANY($1::text[]) ORDER BY 2"
)

# All customers' charges of a kind and currency, counted per amount (0101_charge_amounts),
# with the running count up to each amount: the rows at the ranks the median can reach
# while a batch adds up to `spread` charges of its own (see domain/usual.py, Window).
_USUAL_ACROSS_CUSTOMERS = (
    "SELECT a.kind, a.currency, a.amount, a.charges, a.upto, a.total FROM"
    " (SELECT kind, currency, amount, charges,"
    "  sum(charges) OVER (PARTITION BY kind, currency ORDER BY amount) AS upto,"
    "  sum(charges) OVER (PARTITION BY kind, currency) AS total"
    "  FROM rm_charge_amounts WHERE (kind, currency) IN (SELECT * FROM unnest($1::text[], $2::text[]))) AS a"
    " JOIN unnest($1::text[], $2::text[], $3::int[]) AS p (kind, currency, spread) USING (kind, currency)"
    " WHERE a.upto >= ceil((a.total - p.spread) / 2.0)"
    " AND a.upto - a.charges < ceil((a.total + p.spread) / 2.0)"
    " ORDER BY a.kind, a.currency, a.amount"
)
# The streams a batch reads up front, and those of the cases waiting for its charges, in one
# round trip: the waiting cases' ids become stream ids in an array computed once, so the
# events are still found by their primary key.
_STREAMS_AND_WAITING = (
    SELECT_EVENTS + " WHERE stream_id = ANY($1::text[] || ARRAY(SELECT $3 || case_id FROM rm_awaiting_charge"
    " WHERE charge_id = ANY($2::text[]))) ORDER BY stream_id, version"
)


async def usual_amounts(conn: asyncpg.Connection, charges: Sequence[ChargePosted]) -> Usual:
    """What the usual amounts of ``charges`` (the batch's new ones) are computed from: each
    customer's own charges of the kind recorded so far, and the window of all customers'
    charges of each cross-customer kind that the batch's medians can reach."""
    usual = Usual()
    if not charges:
        return usual
    keys = {(c.customer_id, c.kind, c.currency) for c in charges}
    for key in keys:
        usual.own[key] = []
    # By customer only (a customer has few charges), the kind and currency picked here.
    for r in await conn.fetch(CUSTOMER_CHARGES, list({k[0] for k in keys})):
        own = usual.own.get((r[0], r[1], r[2]))
        if own is not None:
            own.append(r[4])
    spread = Counter((c.kind, c.currency) for c in charges if c.kind in CROSS_CUSTOMER_KINDS)
    if spread:
        totals: dict[tuple[str, str], int] = dict.fromkeys(spread, 0)
        rows: dict[tuple[str, str], list[tuple[Decimal, int, int]]] = {pair: [] for pair in spread}
        for r in await conn.fetch(
            _USUAL_ACROSS_CUSTOMERS,
            [p[0] for p in spread], [p[1] for p in spread], list(spread.values()),
        ):  # fmt: skip
            totals[(r[0], r[1])] = int(r[5])
            rows[(r[0], r[1])].append((r[2], int(r[3]), int(r[4])))
        usual.across = {pair: Window(totals[pair], rows[pair]) for pair in spread}
    return usual


async def read_streams_and_waiting(
    conn: asyncpg.Connection,
    stream_ids: Sequence[str],
    charge_ids: Iterable[str],
    case_prefix: str,
    keys: Keyring | None = None,
) -> dict[str, list[RecordedEvent]]:
    """The events of ``stream_ids`` and of the case streams (``case_prefix`` + case id) of the
    cases waiting for any of ``charge_ids``, by stream (every one of ``stream_ids`` listed)."""
    out: dict[str, list[RecordedEvent]] = {s: [] for s in stream_ids}
    rows = await conn.fetch(_STREAMS_AND_WAITING, list(stream_ids), list(set(charge_ids)), case_prefix)
    for e in await rows_to_events(conn, rows, keys):
        out.setdefault(e.stream_id, []).append(e)
    return out


async def customer_histories(
    conn: asyncpg.Connection, customer_ids: Iterable[str], since: datetime
) -> dict[str, CustomerHistory]:
    ids = list(set(customer_ids))
    if not ids:
        return {}
    times: dict[str, list[datetime]] = {i: [] for i in ids}
    owners: dict[str, str] = {}
    for customer, decided_at, owner in await conn.fetch(CUSTOMER_HISTORIES, ids, since):
        if owner is None:
            times[customer].append(decided_at)
        else:
            owners[customer] = owner
    return {
        i: CustomerHistory(concession_times=tuple(times[i]), previous_owner_id=owners.get(i))
        if times[i] or i in owners
        else NO_HISTORY
        for i in ids
    }


# The advisory-lock class of the per-charge locks (the two-int form: a key space apart from
# the event store's append lock, which is a single bigint).
CHARGE_LOCK_CLASS = 0x5EC1


def charge_lock_keys(charge_ids: Iterable[str]) -> list[int]:
    """The per-charge lock keys of ``charge_ids``, sorted: every transaction takes its locks in
    one order, so two never wait for each other in a cycle (a shared key is only a wait)."""
    keys = {zlib.crc32(c.encode()) for c in charge_ids}
    return sorted(k - (1 << 32) if k >= 1 << 31 else k for k in keys)


async def lock_charges(conn: asyncpg.Connection, charge_ids: Iterable[str]) -> None:
    """Take a lock per charge until the transaction ends (one round trip)."""
    keys = charge_lock_keys(charge_ids)
    if keys:
        # unnest yields the array's elements in order, and each lock is taken as its row comes.
        await conn.execute("SELECT pg_advisory_xact_lock($1, k) FROM unnest($2::int4[]) AS k", CHARGE_LOCK_CLASS, keys)


async def cases_awaiting(conn: asyncpg.Connection, charge_ids: Iterable[str]) -> dict[str, list[str]]:
    ids = list(set(charge_ids))
    out: dict[str, list[str]] = {}
    if not ids:
        return out
    for r in await conn.fetch(
        "SELECT charge_id, case_id FROM rm_awaiting_charge WHERE charge_id = ANY($1::text[])", ids
    ):
        out.setdefault(r[0], []).append(r[1])
    return out


async def project(
    conn: asyncpg.Connection,
    events: Sequence[tuple[EventData, datetime]],
    cases: Iterable[Case],
    versions: dict[str, int],
    policy: Policy,
    now: datetime,
) -> None:
    """Bring the read models in line with ``events`` (data, occurred_at) and the final
    state of every case they touched."""
    charge_rows: list[dict[str, Any]] = []
    refunds: dict[str, Decimal] = {}
    concessions: list[dict[str, Any]] = []
    for data, _at in events:
        # Exact types: isinstance on pydantic models goes through ABCMeta.
        if type(data) is ChargePosted:
            charge_rows.append(
                {"charge_id": data.charge_id, "customer_id": data.customer_id, "kind": data.kind,
                 "amount": data.amount, "currency": data.currency,
                 "product_type": data.product.type if data.product else None, "order_id": data.order_id,
                 "posted_at": data.posted_at}
            )  # fmt: skip
        elif type(data) is ChargeRefunded:
            refunds[data.charge_id] = refunds.get(data.charge_id, Decimal(0)) + data.amount
        elif type(data) is DecisionMade and is_concession(data):
            concessions.append(
                {"customer_id": data.customer.id, "case_id": data.case_id, "decided_at": data.decided_at}
            )
    if charge_rows:
        # A new charge takes the refunds that came before it (rm_early_refunds); a charge seen
        # before (ON CONFLICT) adds nothing to the counts per amount.
        await conn.execute(
            "WITH r AS (SELECT * FROM json_to_recordset($1::json) AS r (charge_id text, customer_id text,"
            " kind text, amount numeric, currency text, product_type text, order_id text,"
            " posted_at timestamptz)),"
            " early AS (DELETE FROM rm_early_refunds e USING r WHERE e.charge_id = r.charge_id"
            " RETURNING e.charge_id, e.amount),"
            " added AS (INSERT INTO rm_charges (charge_id, customer_id, kind, amount, currency, product_type,"
            " order_id, posted_at, refunded_amount) SELECT r.*, coalesce((SELECT sum(early.amount) FROM early"
            " WHERE early.charge_id = r.charge_id), 0) FROM r ON CONFLICT (charge_id) DO NOTHING"
            " RETURNING kind, currency, amount)"
            " INSERT INTO rm_charge_amounts (kind, currency, amount, charges)"
            " SELECT kind, currency, amount, count(*) FROM added GROUP BY kind, currency, amount"
            " ON CONFLICT (kind, currency, amount)"
            " DO UPDATE SET charges = rm_charge_amounts.charges + EXCLUDED.charges",
            json_rows(charge_rows),
        )
    if refunds:
        # A refund of a charge not recorded yet waits for it in rm_early_refunds.
        await conn.execute(
            "WITH r AS (SELECT * FROM json_to_recordset($1::json) AS r (charge_id text, amount numeric)),"
            " applied AS (UPDATE rm_charges c SET refunded_amount = c.refunded_amount + r.amount FROM r"
            " WHERE c.charge_id = r.charge_id RETURNING c.charge_id)"
            " INSERT INTO rm_early_refunds (charge_id, amount)"
            " SELECT charge_id, amount FROM r WHERE charge_id NOT IN (SELECT charge_id FROM applied)",
            json_rows([{"charge_id": c, "amount": a} for c, a in refunds.items()]),
        )
    await upsert_cases(conn, list(cases), versions, policy, now, concessions=concessions)


async def upsert_cases(
    conn: asyncpg.Connection,
    cases: list[Case],
    versions: dict[str, int],
    policy: Policy,
    now: datetime,
    *,
    concessions: Sequence[dict[str, Any]] = (),
) -> None:
    """Write the final state of ``cases`` and record ``concessions`` (customer_id, case_id,
    decided_at), in one statement: one round trip for the batch's projection of its cases."""
    if not cases and not concessions:
        return
    rows: list[dict[str, Any]] = []
    owners: dict[str, str] = {}
    timers: list[dict[str, Any]] = []
    awaiting: list[dict[str, Any]] = []
    for c in cases:
        last = c.decisions[-1] if c.decisions else None
        esc = c.escalation
        rows.append({
            "case_id": c.case_id, "customer_id": c.customer_id, "complaint_id": c.first_complaint.complaint_id,
            "category": c.category, "status": c.status, "owner_id": c.owner.id,
            "priority": esc.priority if esc else None, "assignee": esc.assignee if esc else None,
            "reason": esc.reason.code if esc else None, "sla_deadline": c.sla_deadline,
            "due_by": esc.due_by if esc else None, "contacts": c.contacts, "opened_at": c.filed_at,
            "person_due_by": esc.person_due_by if esc else None,
            "calendar_id": esc.calendar.id if esc and esc.calendar else None,
            "calendar_version": esc.calendar.version if esc and esc.calendar else None,
            "updated_at": now, "decided_at": last.decided_at if last else None,
            "decided_by": last.decided_by if last else None, "rule": last.policy.rule if last else None,
            "outcome": last.outcome if last else None, "within_sla": last.within_sla if last else None,
            "version": versions[c.case_id], "charge_id": c.charge_id, "order_id": c.order_id,
            "claimed_amount": c.first_complaint.claimed_amount, "currency": c.first_complaint.currency,
        })  # fmt: skip
        # One row per customer (a statement may not update a row twice): the last case's
        # owner, as one statement per case would have left it.
        owners[c.customer_id] = c.owner.id
        timers.extend({"case_id": c.case_id, "kind": t.kind, "due_at": t.due_at} for t in pending_timers(c, policy))
        if c.listens_for_charge and c.charge_id:
            awaiting.append({"charge_id": c.charge_id, "case_id": c.case_id})
    # One statement for the five tables: the concessions, the case rows, the customers'
    # owners, and the touched cases' timers and charge waits replaced by their new sets (the
    # rows deleted are those not in the new set, so no row is both deleted and written).
    await conn.execute(
        """WITH concessions AS (
             INSERT INTO rm_concessions (customer_id, case_id, decided_at)
             SELECT * FROM json_to_recordset($5::json) AS c (customer_id text, case_id text,
                 decided_at timestamptz)
             ON CONFLICT DO NOTHING
           ), input AS (
             SELECT * FROM json_to_recordset($1::json) AS r (case_id text, customer_id text,
                 complaint_id text, category text, status text, owner_id text, priority text,
                 assignee text, reason text, sla_deadline timestamptz, due_by timestamptz,
                 contacts int, opened_at timestamptz, updated_at timestamptz,
                 decided_at timestamptz, decided_by text, rule text, outcome text,
                 within_sla bool, version int, person_due_by timestamptz, calendar_id text,
                 calendar_version text, charge_id text, order_id text, claimed_amount numeric,
                 currency text)
           ), upserted AS (
             INSERT INTO rm_cases (case_id, customer_id, complaint_id, category, status, owner_id,
                 priority, assignee, reason, sla_deadline, due_by, contacts, opened_at, updated_at,
                 decided_at, decided_by, rule, outcome, within_sla, version, person_due_by,
                 calendar_id, calendar_version, charge_id, order_id, claimed_amount, currency)
             SELECT * FROM input
             ON CONFLICT (case_id) DO UPDATE SET status = EXCLUDED.status,
                 owner_id = EXCLUDED.owner_id, priority = EXCLUDED.priority,
                 assignee = EXCLUDED.assignee, reason = EXCLUDED.reason,
                 sla_deadline = EXCLUDED.sla_deadline,
                 due_by = EXCLUDED.due_by, contacts = EXCLUDED.contacts,
                 updated_at = EXCLUDED.updated_at, decided_at = EXCLUDED.decided_at,
                 decided_by = EXCLUDED.decided_by, rule = EXCLUDED.rule,
                 outcome = EXCLUDED.outcome, within_sla = EXCLUDED.within_sla,
                 version = EXCLUDED.version, person_due_by = EXCLUDED.person_due_by,
                 calendar_id = EXCLUDED.calendar_id, calendar_version = EXCLUDED.calendar_version,
                 charge_id = EXCLUDED.charge_id, order_id = EXCLUDED.order_id,
                 claimed_amount = EXCLUDED.claimed_amount, currency = EXCLUDED.currency
           ), owners AS (
             INSERT INTO rm_customer_owners (customer_id, owner_id)
             SELECT * FROM json_to_recordset($2::json) AS o (customer_id text, owner_id text)
             ON CONFLICT (customer_id) DO UPDATE SET owner_id = EXCLUDED.owner_id
           ), new_timers AS (
             SELECT * FROM json_to_recordset($3::json) AS t (case_id text, kind text, due_at timestamptz)
           ), old_timers AS (
             DELETE FROM rm_timers r WHERE r.case_id IN (SELECT case_id FROM input)
               AND NOT EXISTS (SELECT 1 FROM new_timers n WHERE n.case_id = r.case_id AND n.kind = r.kind)
           ), timers AS (
             INSERT INTO rm_timers (case_id, kind, due_at) SELECT case_id, kind, due_at FROM new_timers
             ON CONFLICT (case_id, kind) DO UPDATE SET due_at = EXCLUDED.due_at
           ), new_waits AS (
             SELECT * FROM json_to_recordset($4::json) AS w (charge_id text, case_id text)
           ), old_waits AS (
             DELETE FROM rm_awaiting_charge r WHERE r.case_id IN (SELECT case_id FROM input)
               AND NOT EXISTS (SELECT 1 FROM new_waits n WHERE n.charge_id = r.charge_id AND n.case_id = r.case_id)
           )
           INSERT INTO rm_awaiting_charge (charge_id, case_id) SELECT charge_id, case_id FROM new_waits
           ON CONFLICT DO NOTHING""",
        json_rows(rows),
        json_rows([{"customer_id": k, "owner_id": v} for k, v in owners.items()]),
        json_rows(timers),
        json_rows(awaiting),
        json_rows(concessions),
    )
