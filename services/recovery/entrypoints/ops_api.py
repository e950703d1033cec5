"""The ops API: the escalation desk over HTTP (cases, timelines, agent decisions).

Mounted on the recovery service's probes app under ``/api/v1``. Every route needs the bearer
token ``OPS_API_TOKEN``; with no token configured the API answers 503 to everything. The
probes and ``/openapi.json`` stay public. Timelines carry no customer name or email: the
``customer`` objects in event data are reduced to ``{"id": ...}``.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from services.common.contract.events import DecisionMade, Reason, Remedy
from services.recovery.application import RecoveryService, case_stream
from services.recovery.domain.errors import CommandRejected, InvalidAgentDecision, RemedyRejected
from services.recovery.errors import CaseNotFound

DISABLED = "ops API disabled: set OPS_API_TOKEN"

_CASE_COLUMNS = (
    "case_id, customer_id, complaint_id, category, status, owner_id, priority, assignee, reason,"
    " sla_deadline, due_by, contacts, opened_at, updated_at, decided_at, decided_by, rule, outcome,"
    " within_sla, version"
)
# Module level: the routes' annotations are resolved against this module's globals.
_bearer = HTTPBearer(auto_error=False, description="OPS_API_TOKEN")
_URGENCY = "CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 ELSE 2 END"


class CaseSummary(BaseModel):
    """One row of the case read model."""

    model_config = ConfigDict(frozen=True)

    case_id: str
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


class TimelineEntry(BaseModel):
    """One event on the case's stream (customer personal data removed)."""

    version: int
    type: str
    time: datetime
    data: dict[str, Any]


class Apology(BaseModel):
    """The notifier's record of an apology email for the case."""

    template: str
    status: str
    error: str | None = None
    updated_at: datetime


class CaseDetail(BaseModel):
    case: CaseSummary
    timeline: list[TimelineEntry]
    apologies: list[Apology] = Field(default_factory=list)


class DecisionRequest(BaseModel):
    """A person's decision: remedies to grant, or a decline reason for the customer."""

    model_config = ConfigDict(extra="forbid")

    agent_id: str = Field(min_length=1, max_length=128, pattern=r"^\S+$")
    remedies: list[Remedy] = Field(default_factory=list)
    decline_reason: Reason | None = None
    note: str | None = Field(default=None, max_length=2000)


class DecisionSummary(BaseModel):
    case_id: str
    complaint_id: str
    outcome: str
    decided_by: str
    remedies: list[Remedy]
    reasons: list[Reason]
    rule: str
    decided_at: datetime
    sla_deadline: datetime
    within_sla: bool

    @classmethod
    def of(cls, d: DecisionMade) -> DecisionSummary:
        return cls(case_id=d.case_id, complaint_id=d.complaint_id, outcome=d.outcome, decided_by=d.decided_by,
                   remedies=list(d.remedies), reasons=list(d.reasons), rule=d.policy.rule,
                   decided_at=d.decided_at, sla_deadline=d.sla_deadline, within_sla=d.within_sla)  # fmt: skip


class Problem(BaseModel):
    detail: str
    field: str | None = Field(default=None, description="the request's field at fault, e.g. remedies[0].amount")


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


def ops_router(
    get_pool: Callable[[], asyncpg.Pool],
    get_service: Callable[[], RecoveryService],
    token: SecretStr | None,
) -> APIRouter:
    """The ops API routes under ``/api/v1``, all behind the bearer ``token``."""
    expected = token.get_secret_value().encode() if token is not None and token.get_secret_value() else None

    async def authorized(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        if expected is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, DISABLED)
        given = credentials.credentials.encode() if credentials is not None else b""
        if credentials is None or not hmac.compare_digest(given, expected):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or invalid bearer token",
                                headers={"WWW-Authenticate": "Bearer"})  # fmt: skip

    errors: dict[int | str, dict[str, Any]] = {
        401: {"model": Problem, "description": "missing or invalid bearer token"},
        503: {"model": Problem, "description": DISABLED},
    }
    router = APIRouter(prefix="/api/v1", tags=["ops"], dependencies=[Depends(authorized)], responses=errors)

    @router.get("/cases", response_model=list[CaseSummary])
    async def list_cases(
        status_: Annotated[str | None, Query(alias="status", max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[CaseSummary]:
        """Cases, most recently updated first (optionally only those with ``status``)."""
        rows = await get_pool().fetch(
            f"SELECT {_CASE_COLUMNS} FROM rm_cases WHERE ($1::text IS NULL OR status = $1)"
            " ORDER BY updated_at DESC, case_id LIMIT $2",
            status_,
            limit,
        )
        return [CaseSummary(**dict(r)) for r in rows]

    @router.get("/escalations", response_model=list[CaseSummary])
    async def escalations(limit: Annotated[int, Query(ge=1, le=1000)] = 500) -> list[CaseSummary]:
        """Open escalations: urgent first, then high, then by due time."""
        rows = await get_pool().fetch(
            f"SELECT {_CASE_COLUMNS} FROM rm_cases WHERE status = 'escalated'"
            f" ORDER BY {_URGENCY}, coalesce(due_by, sla_deadline), case_id LIMIT $1",
            limit,
        )
        return [CaseSummary(**dict(r)) for r in rows]

    @router.get("/cases/{case_id}", response_model=CaseDetail, responses={404: {"model": Problem}})
    async def show_case(case_id: str) -> CaseDetail:
        """The case and its timeline (every event on its stream), with the apology's status."""
        pool = get_pool()
        row = await pool.fetchrow(f"SELECT {_CASE_COLUMNS} FROM rm_cases WHERE case_id = $1", case_id)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no case {case_id}")
        events = await pool.fetch(
            "SELECT version, event_type, occurred_at, data FROM events WHERE stream_id = $1 ORDER BY version",
            case_stream(case_id),
        )
        mails: list[Any] = []
        if await pool.fetchval("SELECT to_regclass('notifications') IS NOT NULL"):
            mails = await pool.fetch(
                "SELECT template, status, error, updated_at FROM notifications WHERE case_id = $1 ORDER BY updated_at",
                case_id,
            )
        timeline = [
            TimelineEntry(version=e["version"], type=e["event_type"], time=e["occurred_at"], data=_data(e["data"]))
            for e in events
        ]
        return CaseDetail(case=CaseSummary(**dict(row)), timeline=timeline,
                          apologies=[Apology(**dict(m)) for m in mails])  # fmt: skip

    @router.post(
        "/cases/{case_id}/decision",
        response_model=DecisionSummary,
        responses={
            404: {"model": Problem, "description": "no such case"},
            409: {"model": Problem, "description": "the case is not awaiting an agent's decision"},
            422: {
                "model": Problem,
                "description": "neither (or both) remedies and a decline reason; or a remedy the case's charge"
                " refuses (another charge, another currency, more than remains on it), with its field",
            },
        },
    )
    async def decide(case_id: str, body: DecisionRequest) -> DecisionSummary | JSONResponse:
        """Decide an escalated case as a person: grant remedies, or decline with a reason."""
        try:
            made = await get_service().agent_decide(case_id, body.agent_id, body.remedies, body.decline_reason,
                                                    body.note)  # fmt: skip
        except CaseNotFound:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no case {case_id}") from None
        except RemedyRejected as exc:
            problem = Problem(detail=str(exc), field=exc.field)
            return JSONResponse(problem.model_dump(), status_code=422)
        except InvalidAgentDecision as exc:
            raise HTTPException(422, str(exc)) from None
        except CommandRejected as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        return DecisionSummary.of(made)

    return router
