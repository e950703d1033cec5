"""The ops API: the escalation desk over HTTP (cases, timelines, agent decisions).

Mounted on the recovery service's probes app under ``/api/v1``. Every route needs the bearer
token ``OPS_API_TOKEN``; with no token configured the API answers 503 to everything. The
probes stay public; ``/openapi.json`` and the docs are off, or behind the same token, or public
as ``HTTP_DOCS`` says (services/common/http.py). Timelines carry no customer name or email: the
``customer`` objects in event data are reduced to ``{"id": ...}``.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from services.common.contract.events import DecisionMade, Reason, Remedy
from services.recovery import queries
from services.recovery.application import RecoveryService
from services.recovery.domain.errors import CommandRejected, InvalidAgentDecision, RemedyRejected
from services.recovery.errors import CaseNotFound
from services.recovery.queries import CaseDetail, CaseSummary

DISABLED = "ops API disabled: set OPS_API_TOKEN"

# Module level: the routes' annotations are resolved against this module's globals.
_bearer = HTTPBearer(auto_error=False, description="OPS_API_TOKEN")


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
        return await queries.cases(get_pool(), status_, limit)

    @router.get("/escalations", response_model=list[CaseSummary])
    async def escalations(limit: Annotated[int, Query(ge=1, le=1000)] = 500) -> list[CaseSummary]:
        """Open escalations: urgent first, then high, then by due time."""
        return await queries.by_urgency(get_pool(), limit)

    @router.get("/cases/{case_id}", response_model=CaseDetail, responses={404: {"model": Problem}})
    async def show_case(case_id: str) -> CaseDetail:
        """The case and its timeline (every event on its stream), with the apology's status."""
        detail = await queries.case_detail(get_pool(), case_id)
        if detail is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no case {case_id}")
        return detail

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
