"""The ops API: the escalation desk over HTTP (cases, timelines, agent decisions).

Mounted on the recovery service's probes app under ``/api/v1``. Every route needs a bearer
token that verifies as an identity (:mod:`services.recovery.identity`): a person's, from the
built-in issuer or the identity provider, or the read-only service credential
``OPS_API_TOKEN``. Reading needs any of them; deciding a person whose role decides (the
decision's ``decided_by`` is that person, whatever the request says). With no way to sign in
configured the API answers 503 to everything. The probes stay public; ``/openapi.json`` and
the docs are off, or behind the service credential, or public as ``HTTP_DOCS`` says
(services/common/http.py).
Timelines carry no customer name or email: the ``customer`` objects in event data are
reduced to ``{"id": ...}``.

A case is named in a path by its id or by its reference (``RC-7K3F-9QX2-HM4Y``, see
:mod:`..domain.reference`); a reference two cases share is answered 409 with both ids.

Every read of cases (a case, the lists) and every decision is audited (:mod:`..audit`): a
read's record is written before the answer, which is 503 when it cannot be; a decision's in
the decision's own transaction. ``GET /audit`` shows the trail to auditors and supervisors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from services.common.contract.events import DecisionMade, Reason, Remedy
from services.common.logging import get_logger
from services.recovery import audit, erasure, queries
from services.recovery.application import RecoveryService
from services.recovery.domain.errors import CommandRejected, InvalidAgentDecision, RemedyRejected, SelfApproval
from services.recovery.domain.events import DecisionProposed, DecisionRejected
from services.recovery.errors import CaseNotFound
from services.recovery.identity import Action, Authenticator, Forbidden, Identity, IdentityUnavailable, Unauthenticated
from services.recovery.queries import AuditEntry, CaseDetail, CaseSummary, PendingDecision

log = get_logger(__name__)
T = TypeVar("T")
DISABLED = "ops API disabled: no sign-in configured (see docs/security.md)"
UNAUDITED = "the read could not be recorded in the audit trail; try again"
AUDIT_READERS = frozenset({"auditor", "supervisor"})
AMBIGUOUS = "a case reference that two cases share: give the case id"
CaseRef = Annotated[str, Path(description="the case id, or its reference (RC-XXXX-XXXX-XXXX)")]

# Module level: the routes' annotations are resolved against this module's globals.
_bearer = HTTPBearer(auto_error=False, description="a person's sign-in token or JWT, or OPS_API_TOKEN (read-only)")


class DecisionRequest(BaseModel):
    """A person's decision: remedies to grant, or a decline reason for the customer."""

    model_config = ConfigDict(extra="forbid")

    agent_id: str | None = Field(
        default=None,
        max_length=128,
        pattern=r"^\S+$",
        deprecated=True,
        description="deprecated and ignored: the decision is the signed-in person's",
    )
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
    approved_by: str | None = Field(default=None, description="the supervisor who approved it, if it needed one")

    @classmethod
    def of(cls, d: DecisionMade) -> DecisionSummary:
        return cls(case_id=d.case_id, complaint_id=d.complaint_id, outcome=d.outcome, decided_by=d.decided_by,
                   remedies=list(d.remedies), reasons=list(d.reasons), rule=d.policy.rule,
                   decided_at=d.decided_at, sla_deadline=d.sla_deadline, within_sla=d.within_sla)  # fmt: skip


class RejectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(default=None, max_length=2000, description="why, for the proposer")


class Rejection(BaseModel):
    case_id: str
    proposed_by: str
    rejected_by: str
    note: str | None
    rejected_at: datetime


class ErasureReport(BaseModel):
    """What forgetting a customer did; ``recorded`` false: forgotten already, nothing left."""

    customer_id: str
    key_destroyed: bool
    cases: int = Field(description="the customer's cases: decisions and money stay, personal data reads as erased")
    purged: dict[str, int] = Field(description="rows purged, by table")
    recorded: bool
    erased_at: datetime | None = None


class Problem(BaseModel):
    detail: str
    field: str | None = Field(default=None, description="the request's field at fault, e.g. remedies[0].amount")


def ops_router(
    get_pool: Callable[[], asyncpg.Pool],
    get_service: Callable[[], RecoveryService],
    signin: Authenticator | None,
) -> APIRouter:
    """The ops API routes under ``/api/v1``, each behind a verified identity from ``signin``
    (None, or one with no way to sign in: every route answers 503)."""

    async def identity(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Identity:
        if signin is None or not signin.enabled:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, DISABLED)
        try:
            if credentials is None or not credentials.credentials:
                raise Unauthenticated("missing bearer token")
            return await signin.authenticate(credentials.credentials)
        except Unauthenticated:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or invalid bearer token",
                                headers={"WWW-Authenticate": "Bearer"}) from None  # fmt: skip
        except Forbidden as exc:
            raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
        except IdentityUnavailable as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None

    def allowed(action: Action) -> Callable[[Identity], Any]:
        # Defaults, not Annotated: the annotations are resolved against the module's globals.
        async def check(who: Identity = Depends(identity)) -> Identity:
            if not who.can(action):
                raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {who.role} may not {action}")
            return who

        return check

    errors: dict[int | str, dict[str, Any]] = {
        401: {"model": Problem, "description": "missing or invalid bearer token, or a disabled person's"},
        403: {"model": Problem, "description": "the signed-in role may not do this"},
        503: {"model": Problem, "description": DISABLED},
    }
    reader = Depends(allowed("read"))
    router = APIRouter(prefix="/api/v1", tags=["ops"], responses=errors)
    unaudited: dict[int | str, dict[str, Any]] = {503: {"model": Problem, "description": f"{DISABLED}; or {UNAUDITED}"}}

    async def audited(request: Request, who: Identity, action: str, case_id: str | None = None,
                      target: str | None = None) -> None:  # fmt: skip
        """Record a read before it is answered; 503 when the record cannot be written."""
        entry = audit.AuditRecord(get_service().clock(), who.person_id, who.role, action, _client(request),
                                  case_id, target)  # fmt: skip
        try:
            await audit.record(get_pool(), entry)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            log.error("audit.unrecorded", action=action, case_id=case_id, error=type(exc).__name__)
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, UNAUDITED) from None

    async def case_named(case: str) -> str:
        """The id of the case ``case`` names (its id or its reference); 409 if ambiguous."""
        try:
            return await queries.resolve_case_id(get_pool(), case)
        except queries.AmbiguousReference as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None

    @router.get("/cases", response_model=list[CaseSummary], responses=unaudited)
    async def list_cases(
        request: Request,
        status_: Annotated[str | None, Query(alias="status", max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        who: Identity = reader,
    ) -> list[CaseSummary]:
        """Cases, most recently updated first (optionally only those with ``status``), each with
        the time left to the person's deadline on their calendar."""
        service = get_service()
        now = service.clock()
        found = [
            r.with_time_left(now, service.roster.calendar) for r in await queries.cases(get_pool(), status_, limit)
        ]
        await audited(request, who, "cases.list", target=None if status_ is None else f"status={status_}")
        return found

    @router.get("/escalations", response_model=list[CaseSummary], responses=unaudited)
    async def escalations(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=1000)] = 500,
        sort: queries.CaseOrder = "urgency",
        who: Identity = reader,
    ) -> list[CaseSummary]:
        """Open escalations: urgent first, then high, then by due time (``sort=time-left``: least
        time left on the person's calendar first); each with that time left."""
        service = get_service()
        found = await queries.by_urgency(get_pool(), limit, order=sort, now=service.clock(),
                                         calendars=service.roster.calendar)  # fmt: skip
        await audited(request, who, "escalations.list")
        return found

    @router.get(
        "/cases/{case_id}",
        response_model=CaseDetail,
        responses={404: {"model": Problem}, 409: {"model": Problem, "description": AMBIGUOUS}, **unaudited},
    )
    async def show_case(request: Request, case_id: CaseRef, who: Identity = reader) -> CaseDetail:
        """The case and its timeline (every event on its stream), with the apology's status."""
        detail = await queries.case_detail(get_pool(), await case_named(case_id))
        if detail is not None:
            service = get_service()
            detail = detail.model_copy(
                update={"case": detail.case.with_time_left(service.clock(), service.roster.calendar)}
            )
        if detail is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no case {case_id}")
        await audited(request, who, "case.read", detail.case.case_id)
        return detail

    @router.post(
        "/cases/{case_id}/decision",
        response_model=DecisionSummary,
        responses={
            202: {"model": PendingDecision, "description": "an agent's decision that awaits a supervisor's approval"},
            404: {"model": Problem, "description": "no such case"},
            409: {
                "model": Problem,
                "description": f"the case is not awaiting a decision, or one awaits approval; or {AMBIGUOUS}",
            },
            422: {
                "model": Problem,
                "description": "neither (or both) remedies and a decline reason; or a remedy the case's charge"
                " refuses (another charge, another currency, more than remains on it), with its field",
            },
        },
    )
    async def decide(
        request: Request, case_id: CaseRef, body: DecisionRequest, who: Identity = Depends(allowed("decide"))
    ) -> DecisionSummary | JSONResponse:
        """Decide an escalated case as the signed-in person: grant remedies, or decline with a
        reason (``agent_id`` in the body is ignored). An agent's decision over the approval
        limits, or on an urgent case, is answered 202 with the pending decision: nothing is
        granted until a different supervisor approves it."""

        async def run() -> DecisionMade | DecisionProposed:
            return await get_service().agent_decide(await case_named(case_id), who.require("decide"), body.remedies,
                                                    body.decline_reason, body.note, role=who.decides_as,
                                                    client=_client(request))  # fmt: skip

        done = await _answer(case_id, run)
        if isinstance(done, DecisionProposed):
            return JSONResponse(_pending(done).model_dump(mode="json"), status_code=status.HTTP_202_ACCEPTED)
        return done if isinstance(done, JSONResponse) else DecisionSummary.of(done)

    @router.post(
        "/cases/{case_id}/decision/approve",
        response_model=DecisionSummary,
        responses={
            403: {"model": Problem, "description": "not a supervisor, or the decision's own proposer (four eyes)"},
            404: {"model": Problem, "description": "no such case"},
            409: {"model": Problem, "description": f"no decision of the case awaits approval; or {AMBIGUOUS}"},
            422: {"model": Problem, "description": "a remedy the charge's ledger now refuses, with its field"},
        },
    )
    async def approve(
        request: Request, case_id: CaseRef, who: Identity = Depends(allowed("approve"))
    ) -> DecisionSummary | JSONResponse:
        """Approve the case's pending decision (someone else's): its ``DecisionMade``, in the
        proposer's name, on the charge's ledger as it is now."""

        async def run() -> DecisionMade:
            return await get_service().approve_decision(await case_named(case_id), who.require("approve"),
                                                        client=_client(request))  # fmt: skip

        done = await _answer(case_id, run)
        if isinstance(done, JSONResponse):
            return done
        return DecisionSummary.of(done).model_copy(update={"approved_by": f"agent:{who.person_id}"})

    @router.post(
        "/cases/{case_id}/decision/reject",
        response_model=Rejection,
        responses={
            403: {"model": Problem, "description": "not a supervisor"},
            404: {"model": Problem, "description": "no such case"},
            409: {"model": Problem, "description": f"no decision of the case awaits approval; or {AMBIGUOUS}"},
        },
    )
    async def reject(
        request: Request, case_id: CaseRef, body: RejectRequest, who: Identity = Depends(allowed("approve"))
    ) -> Rejection | JSONResponse:
        """Reject the case's pending decision: the case waits for a decision again."""

        async def run() -> DecisionRejected:
            return await get_service().reject_decision(await case_named(case_id), who.require("approve"), body.note,
                                                       client=_client(request))  # fmt: skip

        done = await _answer(case_id, run)
        if isinstance(done, JSONResponse):
            return done
        return Rejection(case_id=done.case_id, proposed_by=done.proposed_by, rejected_by=done.rejected_by,
                         note=done.note, rejected_at=done.rejected_at)  # fmt: skip

    @router.get("/approvals", response_model=list[PendingDecision], responses=unaudited)
    async def approvals(
        request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 500, who: Identity = reader
    ) -> list[PendingDecision]:
        """Agents' decisions waiting for a supervisor's approval, oldest first."""
        found = await queries.pending_decisions(get_pool(), limit)
        await audited(request, who, "approvals.list")
        return found

    @router.get("/audit", response_model=list[AuditEntry],
                responses={403: {"model": Problem, "description": "not an auditor or a supervisor"}})  # fmt: skip
    async def audit_trail(
        case_id: Annotated[str | None, Query(max_length=128, description="the case id or its reference")] = None,
        person: Annotated[str | None, Query(max_length=128)] = None,
        since: datetime | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
        who: Identity = reader,
    ) -> list[AuditEntry]:
        """The audit trail, newest last: who read or decided what, when, from which client
        (auditors and supervisors; ids only)."""
        if who.role not in AUDIT_READERS:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {who.role} may not read the audit trail")
        case = None if case_id is None else await case_named(case_id)
        return await queries.audit_trail(get_pool(), case_id=case, person=person, since=since, limit=limit)

    @router.post("/customers/{customer_id}/forget", response_model=ErasureReport,
                 responses={403: {"model": Problem, "description": "not a supervisor"}})  # fmt: skip
    async def forget_customer(
        request: Request, customer_id: Annotated[str, Path(max_length=128)], who: Identity = Depends(allowed("erase"))
    ) -> ErasureReport:
        """Forget the customer (supervisors): destroy their key, purge the plain copies of
        their personal data, record the erasure (ids only) and its audit record. Idempotent."""
        done = await erasure.forget(get_pool(), customer_id, person=who.require("erase"), role=who.role,
                                    client=_client(request), now=get_service().clock())  # fmt: skip
        return ErasureReport(**dataclasses.asdict(done))

    return router


def _client(request: Request) -> audit.Client:
    """The HTTP peer (its address as the server saw it) and its User-Agent, bounded."""
    return audit.Client.http(request.client.host if request.client else None, request.headers.get("user-agent"))


def _pending(p: DecisionProposed) -> PendingDecision:
    return PendingDecision(case_id=p.case_id, proposed_by=p.proposed_by, proposed_at=p.proposed_at,
                           needs_approval=p.needs_approval.model_dump(mode="json"),
                           remedies=[r.model_dump(mode="json", exclude_none=True) for r in p.remedies],
                           decline_reason=p.decline_reason.model_dump(mode="json") if p.decline_reason else None,
                           note=p.note, version=0)  # fmt: skip


async def _answer(case_id: str, run: Callable[[], Awaitable[T]]) -> T | JSONResponse:
    """``run()``'s result, or the answer to what the domain refused: 404 for no case, 403 for
    a role or four eyes, 422 for a refused remedy (naming its field) or decision, else 409."""
    try:
        return await run()
    except CaseNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no case {case_id}") from None
    except RemedyRejected as exc:
        problem = Problem(detail=str(exc), field=exc.field)
        return JSONResponse(problem.model_dump(), status_code=422)
    except InvalidAgentDecision as exc:
        raise HTTPException(422, str(exc)) from None
    except (Forbidden, SelfApproval) as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
    except CommandRejected as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
