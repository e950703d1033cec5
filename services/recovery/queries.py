"""The recovery service's read side: cases, the escalation queue and a case's timeline, as
the command line and the ops API show them, and the audit trail. Timelines carry no customer name or email: the
``customer`` objects in event data are reduced to ``{"id": ...}``. The apologies' status is
the notifier's, read through its own queries (:mod:`services.notifier.queries`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeAlias

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, computed_field

from services.common import tracing
from services.common.eventstore.shred import open_data
from services.notifier.queries import Apology, apologies
from services.recovery.application import case_stream
from services.recovery.audit import AUDIT_TYPE, AuditRecord
from services.recovery.domain.calendar import Calendar, CalendarError, business_time_between, is_open
from services.recovery.domain.reference import case_reference, parse_reference

Db: TypeAlias = asyncpg.Pool | asyncpg.Connection

CASE_COLUMNS = (
    "case_id, customer_id, complaint_id, category, status, owner_id, priority, assignee, reason,"
    " sla_deadline, due_by, contacts, opened_at, updated_at, decided_at, decided_by, rule, outcome,"
    " within_sla, version, person_due_by, calendar_id, calendar_version"
)
# How a list of cases is ordered: the escalation queue's (urgent first, then by due time), or
# by the time left on the person's calendar, least first.
CaseOrder = Literal["urgency", "time-left"]
# The calendars by id, as the roster resolved them (Roster.calendar).
Calendars: TypeAlias = Callable[[str], Calendar | None]
URGENCY = "CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 ELSE 2 END"


class _OfCase(BaseModel):
    """Something about one case: its id, and the reference people read and type."""

    case_id: str

    @computed_field(description="the case's reference, for people: RC-XXXX-XXXX-XXXX")  # type: ignore[prop-decorator]
    @property
    def reference(self) -> str:
        return case_reference(self.case_id)


class CaseSummary(_OfCase):
    """One row of the case read model."""

    model_config = ConfigDict(frozen=True)

    customer_id: str
    complaint_id: str
    category: str
    status: str = Field(description="open, escalated, awaiting_charge, decided, ...")
    owner_id: str
    priority: str | None = None
    assignee: str | None = None
    reason: str | None = None
    sla_deadline: datetime
    due_by: datetime | None = None
    contacts: int
    opened_at: datetime
    updated_at: datetime
    decided_at: datetime | None = None
    decided_by: str | None = None
    rule: str | None = None
    outcome: str | None = None
    within_sla: bool | None = None
    version: int
    person_due_by: datetime | None = Field(
        default=None, description="the person's deadline, in business hours of the assignee's team calendar"
    )
    calendar_id: str | None = None
    calendar_version: str | None = Field(default=None, description="the calendar's version the deadline was counted on")
    time_left_s: float | None = Field(
        default=None,
        description="seconds left to the person's deadline on their calendar (business time; wall time where the"
        " case has no calendar); negative when overdue; none once decided",
    )
    calendar_open: bool | None = Field(
        default=None, description="whether the person's calendar is open now (the countdown runs); none without one"
    )

    def with_time_left(self, now: datetime, calendars: Calendars) -> CaseSummary:
        """The row with the time left to the person's deadline at ``now`` filled in."""
        if self.status == "decided":
            return self
        due = self.person_due_by or self.due_by or self.sla_deadline
        cal = calendars(self.calendar_id) if self.calendar_id and self.person_due_by else None
        if cal is None:
            return self.model_copy(update={"time_left_s": (due - now).total_seconds()})
        try:
            left, running = business_time_between(cal, now, due), is_open(cal, now)
        except CalendarError:
            return self.model_copy(update={"time_left_s": (due - now).total_seconds()})
        return self.model_copy(update={"time_left_s": left.total_seconds(), "calendar_open": running})


class TimelineEntry(BaseModel):
    """One event on the case's stream (customer personal data removed)."""

    version: int
    type: str
    time: datetime
    data: dict[str, Any]


class CaseDetail(BaseModel):
    case: CaseSummary
    timeline: list[TimelineEntry]
    apologies: list[Apology] = Field(default_factory=list)


async def cases(db: Db, status: str | None, limit: int) -> list[CaseSummary]:
    """Cases, most recently updated first (only those with ``status`` unless it is None)."""
    rows = await db.fetch(
        f"SELECT {CASE_COLUMNS} FROM rm_cases WHERE ($1::text IS NULL OR status = $1)"
        " ORDER BY updated_at DESC, case_id LIMIT $2",
        status,
        limit,
    )
    return [CaseSummary(**dict(r)) for r in rows]


async def by_urgency(
    db: Db,
    limit: int,
    *,
    escalated_only: bool = True,
    order: CaseOrder = "urgency",
    now: datetime | None = None,
    calendars: Calendars | None = None,
) -> list[CaseSummary]:
    """Open escalations (or every case): urgent first, then high, then by due time; or, with
    ``order="time-left"``, by the time left on the person's calendar at ``now``, least first
    (decided cases last). With ``now`` and ``calendars`` each row carries its time left."""
    if order == "time-left":
        if now is None or calendars is None:
            raise ValueError("ordering by time left needs now and the calendars")
        return await _by_time_left(db, limit, escalated_only, now, calendars)
    where = "WHERE status = 'escalated'" if escalated_only else ""
    rows = await db.fetch(
        f"SELECT {CASE_COLUMNS} FROM rm_cases {where}"
        f" ORDER BY {URGENCY}, coalesce(due_by, sla_deadline), case_id LIMIT $1",
        limit,
    )
    found = [CaseSummary(**dict(r)) for r in rows]
    if now is not None and calendars is not None:
        found = [r.with_time_left(now, calendars) for r in found]
    return found


# What the time-left order reads by, as rm_cases_time_left_idx (migration 0110) has it: the
# calendar a row's time left is counted on ('': the wall clock), and the due time it counts to.
_CLOCK = "(coalesce(CASE WHEN person_due_by IS NOT NULL THEN calendar_id END, ''))"
_DUE = "(coalesce(person_due_by, due_by, sla_deadline))"
# The most rows the time-left order reads at a time from one part of the table.
TIME_LEFT_PAGE = 100


async def _by_time_left(
    db: Db, limit: int, escalated_only: bool, now: datetime, calendars: Calendars
) -> list[CaseSummary]:
    """The ``limit`` undecided cases with the least time left at ``now``, then decided ones.

    Bounded, not a sort of every row: the undecided rows fall into parts, one per status and
    calendar (the wall clock counting as one), and within a part the time left never decreases
    as the due time grows (business time to a later instant is never less, and a row counted on
    the wall clock instead, for want of its calendar, keeps that order too). So each part is
    read in keyset pages by (due time, case id) through the index, and its reading stops once
    its last row's time left is above the ``limit``-th found so far: no row after it can get
    in. Each part costs about ``limit`` rows plus the ties at the cut; the parts are found by
    skipping through the index (one probe a part), and the decided rows, with no time left,
    are read only to fill the list up.
    """
    # Index ranges that hold the undecided rows ("<> 'decided'" would walk through the decided).
    ranges = ["status = 'escalated'"] if escalated_only else ["status < 'decided'", "status > 'decided'"]
    parts: list[asyncpg.Record] = []
    for undecided in ranges:
        parts += await db.fetch(
            f"WITH RECURSIVE parts(status, clock) AS ("
            f" (SELECT status, {_CLOCK} FROM rm_cases WHERE {undecided} ORDER BY status, {_CLOCK} LIMIT 1)"
            f" UNION ALL SELECT next.status, next.clock FROM parts, LATERAL ("
            f"  SELECT status, {_CLOCK} AS clock FROM rm_cases"
            f"  WHERE {undecided} AND (status, {_CLOCK}) > (parts.status, parts.clock)"
            f"  ORDER BY status, {_CLOCK} LIMIT 1) AS next"
            f") SELECT status, clock FROM parts"
        )
    # Round by round: a page of every part still open, then only the parts whose last row is
    # not above the limit-th so far, so a part with ties is not read on for a cut found later.
    first = min(limit + 1, TIME_LEFT_PAGE)  # one past the limit: a part without ties ends there
    reading = [_Part(r["status"], r["clock"], first) for r in parts]
    best: list[CaseSummary] = []
    while reading:
        for part in reading:
            keyset = f" AND ({_DUE}, case_id) > ($3, $4)" if part.after else ""
            rows = await db.fetch(
                f"SELECT {CASE_COLUMNS} FROM rm_cases WHERE status = $1 AND {_CLOCK} = $2{keyset}"
                f" ORDER BY {_DUE}, case_id LIMIT {part.page}",
                part.status,
                part.clock,
                *part.after,
            )
            found = [CaseSummary(**dict(r)).with_time_left(now, calendars) for r in rows]
            best = sorted([*best, *found], key=_time_left)[:limit]
            part.ended = len(found) < part.page
            if found:
                last = found[-1]
                part.after = (last.person_due_by or last.due_by or last.sla_deadline, last.case_id)
                part.last = _time_left(last)[0]
            part.page = min(2 * part.page, TIME_LEFT_PAGE)  # ties at the cut: read on in growing pages
        reading = [p for p in reading if not p.ended and (len(best) < limit or p.last <= _time_left(best[-1])[0])]
    if not escalated_only and len(best) < limit:
        rows = await db.fetch(
            f"SELECT {CASE_COLUMNS} FROM rm_cases WHERE status = 'decided' ORDER BY case_id LIMIT $1",
            limit - len(best),
        )
        best += [CaseSummary(**dict(r)) for r in rows]
    return best


@dataclass
class _Part:
    """One part of the table in the time-left order, as far as it has been read."""

    status: str
    clock: str
    page: int
    after: tuple[datetime, str] | tuple[()] = ()
    last: float = 0.0
    ended: bool = False


def _time_left(row: CaseSummary) -> tuple[float, str]:
    assert row.time_left_s is not None  # every undecided row has one
    return row.time_left_s, row.case_id


class AmbiguousReference(LookupError):
    """A case reference that more than one case has: the case id tells them apart."""

    def __init__(self, reference: str, case_ids: list[str]) -> None:
        super().__init__(f"{reference} is the reference of {len(case_ids)} cases: give the case id"
                         f" ({', '.join(case_ids)})")  # fmt: skip
        self.case_ids = case_ids


async def resolve_case_id(db: Db, case: str) -> str:
    """The case id ``case`` names: a case id as given, or the id of the one case whose
    reference it is (through the index of migration 0107). Text that is not a reference,
    or a reference no case has, is returned as given, for the caller's "no case" answer.
    Raises :class:`AmbiguousReference` if two cases share the reference."""
    key = parse_reference(case)
    if key is None:
        return case
    rows = await db.fetch(
        "SELECT case_id FROM rm_cases WHERE rm_case_reference_key(case_id) = $1 ORDER BY case_id LIMIT 10", key
    )
    if len(rows) > 1:
        raise AmbiguousReference(case, [r["case_id"] for r in rows])
    return rows[0]["case_id"] if rows else case


async def case(db: Db, case_id: str) -> CaseSummary | None:
    row = await db.fetchrow(f"SELECT {CASE_COLUMNS} FROM rm_cases WHERE case_id = $1", case_id)
    return None if row is None else CaseSummary(**dict(row))


async def timeline(db: Db, case_id: str) -> list[TimelineEntry]:
    """Every event on the case's stream, in order (empty: no such case); personal data
    opened, or ``[erased]`` when the customer was forgotten."""
    rows = await db.fetch(
        "SELECT version, event_type, occurred_at, data FROM events WHERE stream_id = $1 ORDER BY version",
        case_stream(case_id),
    )
    data = [json.loads(r["data"]) for r in rows]
    await open_data(db, [(r["event_type"], d) for r, d in zip(rows, data, strict=True)])
    return [TimelineEntry(version=r["version"], type=r["event_type"], time=r["occurred_at"], data=_data(d))
            for r, d in zip(rows, data, strict=True)]  # fmt: skip


async def trace_ids(db: Db, case_id: str) -> list[str]:
    """The trace ids the case's events carry (their ``traceparent``), the first first: the
    trace of the complaint that opened it, then those of later contacts and timers."""
    rows = await db.fetch(
        "SELECT metadata->>'traceparent' FROM events WHERE stream_id = $1 AND metadata ? 'traceparent'"
        " ORDER BY version",
        case_stream(case_id),
    )
    return list(dict.fromkeys(t for (tp,) in rows if (t := tracing.trace_id_of(tp)) is not None))


class PendingDecision(_OfCase):
    """An agent's decision waiting for a supervisor's approval."""

    proposed_by: str
    proposed_at: datetime
    needs_approval: dict[str, Any] = Field(description="why: {code: over_approval_limit | urgent_case, text}")
    remedies: list[dict[str, Any]]
    decline_reason: dict[str, Any] | None = None
    note: str | None = None
    version: int = Field(description="the proposal's place on the case's stream")


_PROPOSED = "recovery.decision.proposed.v1"
# What ends a proposal: its approval (with the decision), its rejection, or any decision.
_SETTLED = ["recovery.decision.approved.v1", "recovery.decision.rejected.v1", "recovery.decision.made.v1"]


async def pending_decisions(db: Db, limit: int, case_id: str | None = None) -> list[PendingDecision]:
    """Agents' decisions waiting for a supervisor's approval, oldest first (or the one of
    ``case_id``): each proposal with nothing after it on its case that settles it."""
    rows = await db.fetch(
        "SELECT p.stream_id, p.version, p.data FROM events p WHERE p.event_type = $1"
        " AND ($3::text IS NULL OR p.stream_id = $3)"
        " AND NOT EXISTS (SELECT 1 FROM events q WHERE q.stream_id = p.stream_id AND q.version > p.version"
        "                 AND q.event_type = ANY($2::text[]))"
        " ORDER BY p.occurred_at, p.stream_id LIMIT $4",
        _PROPOSED,
        _SETTLED,
        None if case_id is None else case_stream(case_id),
        limit,
    )
    out = []
    for r in rows:
        d = _data(r["data"])
        out.append(PendingDecision(case_id=d["case_id"], proposed_by=d["proposed_by"], proposed_at=d["proposed_at"],
                                   needs_approval=d["needs_approval"], remedies=d.get("remedies") or [],
                                   decline_reason=d.get("decline_reason"), note=d.get("note"),
                                   version=r["version"]))  # fmt: skip
    return out


async def case_detail(db: Db, case_id: str) -> CaseDetail | None:
    """The case, its timeline and its apologies' status (None: no such case)."""
    summary = await case(db, case_id)
    if summary is None:
        return None
    return CaseDetail(case=summary, timeline=await timeline(db, case_id), apologies=await apologies(db, case_id))


def redact(value: Any) -> Any:
    """``value`` with every ``customer`` object reduced to its id (recursively)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if k == "customer" and isinstance(v, dict):
                out[k] = {"id": v.get("id")}
            else:
                out[k] = redact(v)
        return out
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _data(raw: Any) -> dict[str, Any]:
    loaded = json.loads(raw) if isinstance(raw, str | bytes) else raw
    return dict(redact(loaded)) if isinstance(loaded, dict) else {"value": redact(loaded)}


class AuditEntry(BaseModel):
    """One audit record (ids only): who, when, what, from which client."""

    at: datetime = Field(description="the service clock's time of the action")
    person: str | None = Field(description="the person's id; none for the service credential or the CLI's operator")
    role: str
    action: str = Field(description="case.read, cases.list, decision.made, decision.approved, person.added, ...")
    case_id: str | None = None
    target: str | None = Field(default=None, description="an outcome, a proposer, a person's id")
    note: bool = Field(default=False, description="whether a note came with it (its text is not kept here)")
    client: str = Field(description="http <address> <User-Agent>, or cli <operating-system user>")


async def audit_trail(
    db: Db, *, case_id: str | None = None, person: str | None = None, since: datetime | None = None, limit: int = 200
) -> list[AuditEntry]:
    """The newest ``limit`` audit records that match, newest last."""
    clauses: list[str] = [f"event_type = '{AUDIT_TYPE}'"]  # a literal: it selects the partial indexes
    args: list[object] = []
    wanted = (("data ->> 'case_id' = ", case_id), ("data ->> 'person' = ", person), ("occurred_at >= ", since))
    for sql, value in wanted:
        if value is not None:
            args.append(value)
            clauses.append(f"{sql}${len(args)}")
    args.append(limit)
    rows = await db.fetch(
        f"SELECT data, occurred_at FROM events WHERE {' AND '.join(clauses)}"
        f" ORDER BY global_position DESC LIMIT ${len(args)}",
        *args,
    )
    out = []
    for r in reversed(rows):
        a = AuditRecord.of(json.loads(r["data"]), r["occurred_at"])
        out.append(AuditEntry(at=a.at, person=a.person, role=a.role, action=a.action, case_id=a.case_id,
                              target=a.target, note=a.note, client=a.client.label()))  # fmt: skip
    return out
