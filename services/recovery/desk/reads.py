"""What the desk's pages read: the queue a page at a time (a keyset cursor, never a whole
table), the search, and a case with its charge, its customer's charges of that kind, what
the policy in force would decide and the apology as the customer gets it.

The queue is ordered as the ops API orders escalations (urgent, high, normal; then by due
time; then by case id), and read through ``rm_cases_desk_queue_idx`` (migration 0106), so
its first page costs the same with a million decided cases beside it.
"""

from __future__ import annotations

import base64
import binascii
import json
import statistics
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import asyncpg

from services.common.contract.events import CaseEscalated, DecisionMade, EventData
from services.common.eventstore.shred import open_data
from services.notifier.domain.compose import render_email
from services.notifier.domain.templates import TemplateSet
from services.recovery import queries
from services.recovery.application import case_stream
from services.recovery.domain import decide
from services.recovery.domain.case import Case, fold
from services.recovery.domain.commands import FileComplaint
from services.recovery.domain.errors import RecoveryError
from services.recovery.domain.events import CASE_EVENT_TYPES
from services.recovery.domain.policy import Policy
from services.recovery.domain.remedies import VoucherCodes
from services.recovery.domain.roster import Roster
from services.recovery.queries import CaseSummary, Db
from services.recovery.replay.trusted import loader

PAGE = 50
OPEN_STATUSES = ("escalated", "open", "awaiting_charge")
PRIORITIES = ("urgent", "high", "normal")
CHART_POINTS = 24
_COLUMNS = queries.CASE_COLUMNS + ", charge_id, order_id, claimed_amount, currency"
_DUE = "coalesce(due_by, sla_deadline)"
_URGENCY = queries.URGENCY


@dataclass(frozen=True)
class Filters:
    """The queue's filters: none of them personal data, so they may sit in the URL."""

    status: str = "escalated"
    priority: str | None = None
    owner: str | None = None
    category: str | None = None


@dataclass(frozen=True)
class Row:
    case: CaseSummary
    charge_id: str | None
    order_id: str | None
    claimed: Decimal | None
    currency: str | None

    @property
    def due(self) -> datetime:
        return self.case.due_by or self.case.sla_deadline


@dataclass(frozen=True)
class QueuePage:
    mine: list[Row]
    everyone: list[Row]
    next_cursor: str | None


def _row(r: asyncpg.Record) -> Row:
    d = dict(r)
    extra = {k: d.pop(k) for k in ("charge_id", "order_id", "claimed_amount", "currency")}
    d.pop("urgency", None)
    return Row(CaseSummary(**d), extra["charge_id"], extra["order_id"], extra["claimed_amount"], extra["currency"])


def encode_cursor(row: Row) -> str:
    urgency = PRIORITIES.index(row.case.priority) if row.case.priority in PRIORITIES else 2
    raw = json.dumps([urgency, row.due.isoformat(), row.case.case_id])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(text: str | None) -> tuple[int, datetime, str] | None:
    """The key after which a page starts; None for the first page or a cursor that is not one."""
    if not text:
        return None
    try:
        urgency, due, case_id = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        return int(urgency), datetime.fromisoformat(due), str(case_id)
    except (binascii.Error, ValueError, TypeError):
        return None


_FILTERED = (
    f"SELECT {_COLUMNS}, {_URGENCY} AS urgency FROM rm_cases WHERE status = $1"
    " AND ($2::text IS NULL OR priority = $2) AND ($3::text IS NULL OR owner_id = $3)"
    " AND ($4::text IS NULL OR category = $4)"
)


async def queue(db: Db, me: str | None, f: Filters, after: str | None = None, limit: int = PAGE) -> QueuePage:
    """A page of the queue: the signed-in person's cases first (on the first page), then
    everyone else's from the cursor ``after``."""
    mine: list[Row] = []
    if me is not None and after is None:
        rows = await db.fetch(
            _FILTERED + f" AND assignee = $5 ORDER BY {_URGENCY}, {_DUE}, case_id LIMIT $6",
            f.status, f.priority, f.owner, f.category, me, limit,
        )  # fmt: skip
        mine = [_row(r) for r in rows]
    key = decode_cursor(after)
    rows = await db.fetch(
        _FILTERED + f" AND assignee IS DISTINCT FROM $5 AND ($6::int IS NULL OR ({_URGENCY}, {_DUE}, case_id)"
        f" > ($6::int, $7::timestamptz, $8::text)) ORDER BY {_URGENCY}, {_DUE}, case_id LIMIT $9",
        f.status, f.priority, f.owner, f.category, me,
        *(key if key is not None else (None, None, None)), limit + 1,
    )  # fmt: skip
    everyone = [_row(r) for r in rows[:limit]]
    return QueuePage(mine, everyone, encode_cursor(everyone[-1]) if len(rows) > limit else None)


async def search(db: Db, term: str, limit: int = PAGE) -> list[Row]:
    """Cases whose case, customer, complaint, charge or order id, or case reference, is
    ``term`` (each an index look-up), most recently updated first."""
    term = term.strip()
    if not term:
        return []
    try:
        term = await queries.resolve_case_id(db, term)
    except queries.AmbiguousReference as shared:  # the cases that share it, for a person to tell apart
        rows = await db.fetch(
            f"SELECT {_COLUMNS} FROM rm_cases WHERE case_id = ANY($1) ORDER BY case_id", shared.case_ids
        )
        return [_row(r) for r in rows]
    parts = " UNION ".join(
        f"SELECT {_COLUMNS} FROM rm_cases WHERE {col} = $1"
        for col in ("case_id", "customer_id", "complaint_id", "charge_id", "order_id")
    )
    rows = await db.fetch(f"SELECT * FROM ({parts}) AS found ORDER BY updated_at DESC, case_id LIMIT $2", term, limit)
    return [_row(r) for r in rows]


async def row(db: Db, case_id: str) -> Row | None:
    found = await db.fetchrow(f"SELECT {_COLUMNS} FROM rm_cases WHERE case_id = $1", case_id)
    return None if found is None else _row(found)


# --------------------------------------------------------------------------- the case page


@dataclass(frozen=True)
class Point:
    charge_id: str
    amount: Decimal
    posted_at: datetime


@dataclass(frozen=True)
class Money:
    """The case's charge, what has been paid back on it, and the customer's charges of
    that kind (the newest ``CHART_POINTS``, oldest first) with their usual amount."""

    charge_id: str
    kind: str
    amount: Decimal
    currency: str
    posted_at: datetime
    refunded: Decimal
    history: list[Point]
    usual: Decimal | None


async def money(db: Db, charge_id: str | None) -> Money | None:
    if charge_id is None:
        return None
    c = await db.fetchrow(
        "SELECT charge_id, customer_id, kind, amount, currency, posted_at, refunded_amount FROM rm_charges"
        " WHERE charge_id = $1",
        charge_id,
    )
    if c is None:
        return None
    rows = await db.fetch(
        "SELECT charge_id, amount, posted_at FROM rm_charges WHERE customer_id = $1 AND kind = $2 AND currency = $3"
        " ORDER BY posted_at DESC, charge_id LIMIT $4",
        c["customer_id"], c["kind"], c["currency"], CHART_POINTS,
    )  # fmt: skip
    history = [Point(r["charge_id"], r["amount"], r["posted_at"]) for r in reversed(rows)]
    usual = statistics.median_low([p.amount for p in history]) if history else None
    return Money(c["charge_id"], c["kind"], c["amount"], c["currency"], c["posted_at"], c["refunded_amount"],
                 history, usual)  # fmt: skip


async def stored_case(db: Db, case_id: str) -> tuple[Case | None, list[EventData]]:
    """The case folded from its stream, and the stream's events as models."""
    rows = await db.fetch(
        "SELECT event_type, data FROM events WHERE stream_id = $1 ORDER BY version", case_stream(case_id)
    )
    stored = [(r["event_type"], json.loads(r["data"]) if isinstance(r["data"], str | bytes) else r["data"])
              for r in rows]  # fmt: skip
    await open_data(db, stored)  # the apology preview needs the customer's name, sealed at rest
    events: list[EventData] = []
    for event_type, data in stored:
        model = CASE_EVENT_TYPES.get(event_type)
        if model is not None:
            events.append(loader(model)(data))
    return fold(events), events


@dataclass(frozen=True)
class PolicyView:
    """What the policy in force decides on the case's first complaint and charge alone."""

    outcome: Literal["resolved", "declined", "escalated", "waits"]
    remedies: list[str]
    reasons: list[str]


def policy_view(case: Case, policy: Policy, roster: Roster, codes: VoucherCodes) -> PolicyView | None:
    """The policy in force on this complaint and charge (the customer's history aside), as
    the domain decides it: pure, nothing recorded."""
    command = FileComplaint(complaint=case.first_complaint, charge=case.charge)
    try:
        events = decide(None, command, case.filed_at, policy, roster, codes)
    except RecoveryError:
        return None
    for e in events:
        if type(e) is DecisionMade:
            return PolicyView(e.outcome, [remedy_text(r) for r in e.remedies], [r.text for r in e.reasons])
        if type(e) is CaseEscalated:
            return PolicyView("escalated", [], [e.reason.text])
    return PolicyView("waits", [], ["It waits for the charge before deciding."])


def remedy_text(r: Any) -> str:
    money_part = f" {r.amount} {r.currency}" if r.amount is not None else ""
    return f"{r.type}{money_part}"


@dataclass(frozen=True)
class Preview:
    template: str
    subject: str
    text: str
    locale: str


def apology_preview(events: list[EventData], templates: TemplateSet) -> Preview | None:
    """The email the customer got or will get for the case's latest decision or escalation."""
    for e in reversed(events):
        if type(e) is DecisionMade or type(e) is CaseEscalated:
            email = render_email(e, templates)
            if email is None:
                return None
            template, rendered = email
            assert e.customer is not None  # render_email gave an email
            return Preview(template, rendered.subject, rendered.text, e.customer.locale)
    return None
