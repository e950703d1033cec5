"""The desk's pages under ``/desk``: sign-in, the queue, a case, the decision form with its
confirmation, claim, reassign and notes, the dead letters and the what-if (docs/desk.md).

Every page is rendered on the server (Jinja2); ``static/desk.js`` only counts down the SLA
and refreshes the queue. Decisions go through the same application calls as the ops API
(:class:`~services.recovery.application.RecoveryService`), so the domain's rules, the
approval limits and four eyes hold here as there; ``decided_by`` is the signed-in person.
Every page that shows cases or dead letters is audited (:mod:`..audit`) before it is
answered. No personal data goes in a URL: the search is a POST, pages name cases by id.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import html
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile

from services.common.contract.events import Reason, Remedy
from services.common.logging import get_logger
from services.notifier.domain.templates import TemplateSet, load_templates
from services.notifier.queries import apologies
from services.recovery import audit, queries
from services.recovery.adapters import dead_letters as dl
from services.recovery.application import RecoveryService
from services.recovery.desk import reads
from services.recovery.desk.guard import CSRF, PREFIX, SESSION, SecurityHeaders, csrf_ok, new_csrf
from services.recovery.domain.errors import CommandRejected, ConfigError, InvalidAgentDecision, RemedyRejected
from services.recovery.domain.events import DecisionProposed
from services.recovery.domain.policy import DEFAULT_POLICY_FILE, Policy, load_policy
from services.recovery.domain.reference import case_reference
from services.recovery.errors import CaseNotFound
from services.recovery.identity import Authenticator, Forbidden, Identity, IdentityUnavailable, Unauthenticated
from services.recovery.settings import RecoverySettings
from services.recovery.whatif import what_if
from services.recovery.whatif.report import render_html

log = get_logger(__name__)
HERE = Path(__file__).parent
REMEDIES = ("refund", "charge_waiver", "voucher", "repair", "replacement", "cancellation")
MONEY_REMEDIES = frozenset({"refund", "charge_waiver", "voucher"})
VOUCHER_DAYS = 365
_STYLE_ELEMENT = re.compile(r"<style[^>]*>(.*?)</style>", re.DOTALL | re.IGNORECASE)
_STYLE_ATTRIBUTE = re.compile(r'\sstyle="([^"]*)"', re.IGNORECASE)


def display_ref(case_id: str) -> str:
    """How the desk shows a case to people: its reference (RC-XXXX-XXXX-XXXX)."""
    return case_reference(case_id)


@dataclass(frozen=True)
class Desk:
    """What the desk's pages run on, each taken when a request comes (the runtime's)."""

    settings: RecoverySettings
    get_pool: Callable[[], asyncpg.Pool]
    get_service: Callable[[], RecoveryService]
    get_producer: Callable[[], AIOKafkaProducer | None]
    signin: Authenticator | None


class Refused(Exception):
    """A form the server refuses; ``field`` is where the error is shown."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def mount_desk(app: FastAPI, desk: Desk) -> None:
    """The desk's routes, its static files and its security headers, on ``app``."""
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="desk-static")
    app.include_router(desk_router(desk))
    app.add_middleware(SecurityHeaders)


def desk_router(desk: Desk) -> APIRouter:
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals["ref"] = display_ref
    emails: list[TemplateSet] = []
    router = APIRouter(prefix=PREFIX, include_in_schema=False)

    def email_templates() -> TemplateSet:
        if not emails:
            emails.append(load_templates(None))
        return emails[0]

    def page(request: Request, name: str, who: Identity | None, status: int = 200, **context: Any) -> Response:
        token = request.cookies.get(CSRF) or new_csrf()
        response = templates.TemplateResponse(request, name, {"who": who, "csrf": token, **context},
                                              status_code=status)  # fmt: skip
        if request.cookies.get(CSRF) != token:
            response.set_cookie(CSRF, token, httponly=True, samesite="strict", secure=_https(request), path=PREFIX)
        return response

    def to(path: str) -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}{path}", status_code=303)

    async def identity(request: Request) -> Identity | None:
        token = request.cookies.get(SESSION)
        if not token or desk.signin is None or not desk.signin.enabled:
            return None
        try:
            return await desk.signin.authenticate(token)
        except (Unauthenticated, Forbidden, IdentityUnavailable):
            return None

    async def form_of(request: Request) -> FormData:
        form = await request.form()
        if not csrf_ok(request.cookies.get(CSRF), _text(form, "csrf")):
            raise Refused("csrf", "the form expired: open the page again")
        return form

    async def audited(request: Request, who: Identity, action: str, case_id: str | None = None) -> None:
        entry = audit.AuditRecord(desk.get_service().clock(), who.person_id, who.role, action, _client(request),
                                  case_id)  # fmt: skip
        await audit.record(desk.get_pool(), entry)

    def unaudited(request: Request, who: Identity) -> Response:
        return page(request, "message.html", who, 503, title="Not recorded",
                    message="The read could not be recorded in the audit trail; try again.")  # fmt: skip

    # ------------------------------------------------------------------ sign-in

    @router.get("")
    async def home() -> RedirectResponse:
        return to("/queue")

    @router.get("/signin")
    async def signin_page(request: Request) -> Response:
        return page(request, "signin.html", None, error=None)

    @router.post("/signin")
    async def signin(request: Request) -> Response:
        try:
            form = await form_of(request)
        except Refused as exc:
            return page(request, "signin.html", None, 403, error=str(exc))
        token = _text(form, "token").strip()
        if desk.signin is None or not desk.signin.enabled:
            return page(request, "signin.html", None, 503, error="No way to sign in is configured.")
        try:
            await desk.signin.authenticate(token)
        except (Unauthenticated, Forbidden):
            return page(request, "signin.html", None, 401, error="That token is not valid, or its person is disabled.")
        except IdentityUnavailable as exc:
            return page(request, "signin.html", None, 503, error=str(exc))
        response = to("/queue")
        response.set_cookie(SESSION, token, httponly=True, samesite="strict", secure=_https(request), path=PREFIX)
        return response

    @router.post("/signout")
    async def signout(request: Request) -> Response:
        with contextlib.suppress(Refused):
            await form_of(request)
        response = to("/signin")
        response.delete_cookie(SESSION, path=PREFIX)
        return response

    # ------------------------------------------------------------------ the queue

    def filters(request: Request) -> reads.Filters:
        q = request.query_params
        status = q.get("status") if q.get("status") in reads.OPEN_STATUSES else "escalated"
        priority = q.get("priority") if q.get("priority") in reads.PRIORITIES else None
        return reads.Filters(status or "escalated", priority, (q.get("owner") or "").strip()[:128] or None,
                             (q.get("category") or "").strip()[:64] or None)  # fmt: skip

    async def queue_page(request: Request, partial: bool) -> Response:
        who = await identity(request)
        if who is None:
            return to("/signin")
        f = filters(request)
        found = await reads.queue(desk.get_pool(), who.person_id, f, request.query_params.get("after"))
        found = found.timed(_now(desk), desk.get_service().roster.calendar)
        try:
            await audited(request, who, "desk.queue")
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
            return unaudited(request, who)
        name = "queue_rows.html" if partial else "queue.html"
        return page(request, name, who, page_=found, f=f, now=_now(desk), searched=None,
                    statuses=reads.OPEN_STATUSES, priorities=reads.PRIORITIES)  # fmt: skip

    @router.get("/queue")
    async def queue(request: Request) -> Response:
        return await queue_page(request, partial=False)

    @router.get("/queue/rows")
    async def queue_rows(request: Request) -> Response:
        return await queue_page(request, partial=True)

    @router.post("/search")
    async def search(request: Request) -> Response:
        who = await identity(request)
        if who is None:
            return to("/signin")
        try:
            form = await form_of(request)
        except Refused as exc:
            return page(request, "message.html", who, 403, title="Not searched", message=str(exc))
        term = _text(form, "q")[:256]
        found = await reads.search(desk.get_pool(), term)
        try:
            await audited(request, who, "desk.search")
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
            return unaudited(request, who)
        found_page = reads.QueuePage([], found, None).timed(_now(desk), desk.get_service().roster.calendar)
        return page(request, "queue.html", who, page_=found_page, f=reads.Filters(),
                    now=_now(desk), searched=term, statuses=reads.OPEN_STATUSES,
                    priorities=reads.PRIORITIES)  # fmt: skip

    # ------------------------------------------------------------------ a case

    async def case_context(request: Request, who: Identity, case_id: str) -> dict[str, Any] | None:
        pool, service = desk.get_pool(), desk.get_service()
        found = await reads.row(pool, case_id)
        if found is None:
            return None
        case, events = await reads.stored_case(pool, case_id)
        context: dict[str, Any] = {
            "row": found.timed(_now(desk), service.roster.calendar),
            "timeline": [_told(t) for t in await queries.timeline(pool, case_id)],
            "apologies": await apologies(pool, case_id),
            "money": await reads.money(pool, found.charge_id),
            "pending": await queries.pending_decisions(pool, 1, case_id),
            "policy": None
            if case is None
            else reads.policy_view(case, service.policy, service.roster, service.vouchers),
            "preview": reads.apology_preview(events, email_templates()),
            "now": _now(desk),
        }
        await audited(request, who, "case.read", case_id)
        return context

    async def show(request: Request, who: Identity, case_id: str, name: str, status: int = 200,
                   **extra: Any) -> Response:  # fmt: skip
        try:
            context = await case_context(request, who, case_id)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
            return unaudited(request, who)
        if context is None:
            return page(request, "message.html", who, 404, title="No such case", message="There is no such case.")
        return page(request, name, who, status, **context, **extra)

    @router.get("/cases/{case_id}")
    async def case_page(request: Request, case_id: str) -> Response:
        who = await identity(request)
        if who is None:
            return to("/signin")
        return await show(request, who, case_id, "case.html", done=request.query_params.get("done"))

    @router.get("/cases/{case_id}/decide")
    async def decide_page(request: Request, case_id: str) -> Response:
        who = await identity(request)
        if who is None:
            return to("/signin")
        return await show(request, who, case_id, "decide.html", form={}, errors={}, confirm=False,
                          remedies=REMEDIES)  # fmt: skip

    @router.post("/cases/{case_id}/decide")
    async def decide(request: Request, case_id: str) -> Response:
        who = await identity(request)
        if who is None:
            return to("/signin")
        values: dict[str, str] = {}
        try:
            form = await form_of(request)
            values = {k: _text(form, k) for k in ("remedy", "amount", "currency", "reason_code", "reason_text",
                                                  "note", "step")}  # fmt: skip
            person = who.require("decide")
            found = await reads.row(desk.get_pool(), case_id)
            if found is None:
                raise Refused("remedy", "There is no such case.")
            remedies, decline = _decision(values, found, desk.get_service().clock())
            if values["step"] != "confirm":
                return await show(request, who, case_id, "decide.html", form=values, errors={}, confirm=True,
                                  remedies=REMEDIES)  # fmt: skip
            done = await desk.get_service().agent_decide(case_id, person, remedies, decline,
                                                         values["note"].strip() or None, role=who.decides_as,
                                                         client=_client(request))  # fmt: skip
        except Refused as exc:
            return await show(request, who, case_id, "decide.html", 422, form=values, errors={exc.field: str(exc)},
                              confirm=False, remedies=REMEDIES)  # fmt: skip
        except Forbidden as exc:
            return await show(request, who, case_id, "decide.html", 403, form=values, errors={"remedy": str(exc)},
                              confirm=False, remedies=REMEDIES)  # fmt: skip
        except RemedyRejected as exc:
            field = _form_field(exc.field)
            return await show(request, who, case_id, "decide.html", 422, form=values, errors={field: str(exc)},
                              confirm=False, remedies=REMEDIES)  # fmt: skip
        except (InvalidAgentDecision, CommandRejected, CaseNotFound) as exc:
            return await show(request, who, case_id, "decide.html", 409, form=values, errors={"remedy": str(exc)},
                              confirm=False, remedies=REMEDIES)  # fmt: skip
        return to(f"/cases/{case_id}?done={'proposed' if isinstance(done, DecisionProposed) else 'decided'}")

    async def by_person(request: Request, case_id: str, act: Callable[[Identity, FormData], Any]) -> Response:
        who = await identity(request)
        if who is None:
            return to("/signin")
        try:
            form = await form_of(request)
            await act(who, form)
        except Refused as exc:
            return await show(request, who, case_id, "case.html", 422, error=(exc.field, str(exc)), done=None)
        except Forbidden as exc:
            return await show(request, who, case_id, "case.html", 403, error=("action", str(exc)), done=None)
        except (CommandRejected, CaseNotFound) as exc:
            return await show(request, who, case_id, "case.html", 409, error=("action", str(exc)), done=None)
        return to(f"/cases/{case_id}")

    @router.post("/cases/{case_id}/claim")
    async def claim(request: Request, case_id: str) -> Response:
        async def act(who: Identity, _form: FormData) -> None:
            person = who.require("decide")
            await desk.get_service().assign_case(case_id, person, person, role=who.role, client=_client(request))

        return await by_person(request, case_id, act)

    @router.post("/cases/{case_id}/reassign")
    async def reassign(request: Request, case_id: str) -> Response:
        async def act(who: Identity, form: FormData) -> None:
            person = who.require("decide")
            assignee = _text(form, "assignee").strip()
            if not assignee or len(assignee) > 128 or any(c.isspace() for c in assignee):
                raise Refused("assignee", "Give the id of the person to hand the case to.")
            await desk.get_service().assign_case(case_id, person, assignee, role=who.role, client=_client(request))

        return await by_person(request, case_id, act)

    @router.post("/cases/{case_id}/note")
    async def note(request: Request, case_id: str) -> Response:
        async def act(who: Identity, form: FormData) -> None:
            person = who.require("decide")
            text = _text(form, "note").strip()
            if not text or len(text) > 2000:
                raise Refused("note", "A note is 1 to 2000 characters.")
            await desk.get_service().add_note(case_id, person, text, role=who.role, client=_client(request))

        return await by_person(request, case_id, act)

    # ------------------------------------------------------------------ dead letters

    async def letters_page(request: Request, who: Identity, status: int = 200, **extra: Any) -> Response:
        before = request.query_params.get("before")
        async with desk.get_pool().acquire() as conn:
            try:
                await dl.sync(conn, desk.settings, timeout_s=10)
            except dl.DeadLetterToolError as exc:
                extra.setdefault("error", str(exc))
            found = await dl.find(conn, limit=reads.PAGE + 1, before=before)
        try:
            await audited(request, who, "dead_letters.list")
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
            return unaudited(request, who)
        rows = found[: reads.PAGE]
        more = dl.cursor(rows[-1]) if len(found) > reads.PAGE else None
        return page(request, "dead_letters.html", who, status, letters=rows, more=more, **extra)

    @router.get("/dead-letters")
    async def dead_letters(request: Request) -> Response:
        who = await identity(request)
        if who is None:
            return to("/signin")
        return await letters_page(request, who)

    @router.post("/dead-letters/{letter_id}/redrive")
    async def redrive(request: Request, letter_id: str) -> Response:
        who = await identity(request)
        if who is None:
            return to("/signin")
        try:
            form = await form_of(request)
            who.require("approve")
            producer = desk.get_producer()
            if producer is None:
                raise Refused("redrive", "The service's producer is not running.")
            raw = _text(form, "fixed").strip().encode()
            async with desk.get_pool().acquire() as conn:
                synced = await dl.sync(conn, desk.settings, timeout_s=10)
                stored = await dl.get(conn, letter_id)
                fixed = dl.fixed_message(raw, stored.letter.original.topic, desk.settings) if raw else None
                sent = await dl.redrive(conn, producer, letter_id, fixed=fixed, force=form.get("force") == "on",
                                        topics=synced.topics, now=datetime.now(UTC))  # fmt: skip
        except (Refused, dl.DeadLetterToolError, Forbidden) as exc:
            return await letters_page(request, who, 422, error=str(exc), failed=letter_id)
        return await letters_page(request, who, sent=sent, sent_id=letter_id)

    # ------------------------------------------------------------------ what-if

    def policies() -> list[Path]:
        """The policy files beside the one in force (and the shipped one)."""
        in_force = desk.settings.recovery_policy_file or DEFAULT_POLICY_FILE
        found = {in_force, DEFAULT_POLICY_FILE, *in_force.parent.glob("*.toml")}
        return sorted((p for p in found if "roster" not in p.name), key=lambda p: p.name)

    @router.get("/whatif")
    async def whatif_page(request: Request) -> Response:
        who = await identity(request)
        if who is None:
            return to("/signin")
        return page(request, "whatif.html", who, policies=[p.name for p in policies()], error=None)

    @router.post("/whatif")
    async def whatif(request: Request) -> Response:
        who = await identity(request)
        if who is None:
            return to("/signin")
        try:
            form = await form_of(request)
            upload = form.get("upload")
            if isinstance(upload, UploadFile) and upload.filename:
                text = (await upload.read()).decode("utf-8", errors="replace")
                origin = upload.filename
            else:
                chosen = {p.name: p for p in policies()}.get(_text(form, "policy"))
                if chosen is None:
                    raise Refused("policy", "Choose a policy file or upload one.")
                text, origin = chosen.read_text(encoding="utf-8"), chosen.name
            try:
                candidate = await asyncio.to_thread(_policy_from_text, text)
            except ConfigError as exc:
                raise Refused("policy", str(exc).replace(_UPLOADED, origin)) from None
            await audited(request, who, "whatif.run")
            async with desk.get_pool().acquire() as conn:
                result = await what_if(conn, candidate, desk.get_service().roster)
        except Refused as exc:
            return page(request, "whatif.html", who, 422, policies=[p.name for p in policies()], error=str(exc))
        report = await asyncio.to_thread(render_html, result.summary)
        response = HTMLResponse(report)
        response.headers["content-security-policy"] = report_csp(report)
        return response

    return router


# --------------------------------------------------------------------------- helpers

_UPLOADED = "uploaded-policy.toml"


def _policy_from_text(text: str) -> Policy:
    """A policy from a file's text, checked as the service checks its own (ConfigError)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / _UPLOADED
        path.write_text(text, encoding="utf-8")
        return load_policy(path)


def report_csp(report: str) -> str:
    """The what-if report's CSP. The report is a self-contained page (the file `recoveryctl
    whatif` writes), so its styles are inline: each is allowed by its hash, never by
    'unsafe-inline'. It has no script."""

    def sources(texts: list[str]) -> str:
        hashes = dict.fromkeys(base64.b64encode(hashlib.sha256(t.encode()).digest()).decode() for t in texts)
        return " ".join(f"'sha256-{h}'" for h in hashes)

    elements = sources(_STYLE_ELEMENT.findall(report)) or "'none'"
    attributes = sources([html.unescape(a) for a in _STYLE_ATTRIBUTE.findall(report)])
    return (
        f"default-src 'none'; style-src {elements};"
        + (f" style-src-attr 'unsafe-hashes' {attributes};" if attributes else "")
        + " img-src data:; frame-ancestors 'none'; base-uri 'none'"
    )


def _now(desk: Desk) -> datetime:
    return desk.get_service().clock()


def _https(request: Request) -> bool:
    return request.url.scheme == "https"


def _client(request: Request) -> audit.Client:
    return audit.Client.http(request.client.host if request.client else None, request.headers.get("user-agent"))


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _form_field(api_field: str | None) -> str:
    """The form's field for the API's (``remedies[0].amount`` is the amount field)."""
    last = (api_field or "").rsplit(".", 1)[-1]
    return last if last in ("amount", "currency") else "remedy"


def _decision(values: dict[str, str], row: reads.Row, now: datetime) -> tuple[list[Remedy], Reason | None]:
    """The remedies or the decline reason the form asks for, as the API's models validate
    them; :class:`Refused` names the field at fault."""
    kind = values["remedy"]
    if kind == "decline":
        code, text = values["reason_code"].strip() or "declined", values["reason_text"].strip()
        if not text:
            raise Refused("reason_text", "Say why, in words the customer reads.")
        try:
            return [], Reason(code=code, text=text)
        except ValidationError as exc:
            raise Refused("reason_text", _first_error(exc)) from None
    if kind not in REMEDIES:
        raise Refused("remedy", "Choose a remedy, or decline.")
    fields: dict[str, Any] = {"type": kind}
    if kind in MONEY_REMEDIES:
        try:
            fields["amount"] = Decimal(values["amount"].strip())
        except InvalidOperation:
            raise Refused("amount", "An amount, such as 12.50.") from None
        fields["currency"] = values["currency"].strip().upper() or (row.currency or "")
        if kind != "voucher":
            fields["charge_id"] = row.charge_id
        else:
            fields |= {"voucher_code": "issued-by-the-service", "expires_at": now + timedelta(days=VOUCHER_DAYS)}
    try:
        return [Remedy(**fields)], None
    except ValidationError as exc:
        loc = exc.errors()[0].get("loc", ())
        field = str(loc[0]) if loc and str(loc[0]) in ("amount", "currency") else "amount"
        raise Refused(field, _first_error(exc)) from None


def _first_error(exc: ValidationError) -> str:
    return str(exc.errors()[0].get("msg", "not valid")).removeprefix("Value error, ")


@dataclass(frozen=True)
class Told:
    time: datetime
    text: str


def _told(t: queries.TimelineEntry) -> Told:
    """One timeline event in plain language (no customer's name or email: the timeline has none)."""
    d = t.data
    kind = t.type.removeprefix("recovery.").removesuffix(".v1")
    says: dict[str, Callable[[], str]] = {
        "case.opened": lambda: (
            f"Case opened; owner {(d.get('case_owner') or {}).get('id', '?')}, due by {d.get('sla_deadline', '?')}."
        ),
        "case.contact_added": lambda: (
            f"Complaint {d.get('contact')} filed: "
            f"{(d.get('complaint') or {}).get('category', '?')} by {(d.get('complaint') or {}).get('channel', '?')}."
        ),
        "case.charge_awaited": lambda: f"Waiting for charge {d.get('charge_id')} until {d.get('until')}.",
        "case.charge_linked": lambda: (
            f"Charge {(d.get('charge') or {}).get('charge_id')} linked: "
            f"{(d.get('charge') or {}).get('amount')} {(d.get('charge') or {}).get('currency')}."
        ),
        "case.escalated": lambda: (
            f"Escalated, {d.get('priority')}: {(d.get('reason') or {}).get('text', '')}"
            f" Assigned to {d.get('assignee')}, due by {d.get('due_by')}."
        ),
        "decision.made": lambda: (
            f"Decided by {d.get('decided_by')}: {d.get('outcome')}"
            + "".join(f"; {reads.remedy_text(Remedy.model_validate(r))}" for r in d.get("remedies") or [])
            + "."
        ),
        "decision.proposed": lambda: f"Decision proposed by {d.get('proposed_by')}; it awaits a supervisor.",
        "decision.approved": lambda: f"Decision approved by {d.get('approved_by')}.",
        "decision.rejected": lambda: f"Decision rejected by {d.get('rejected_by')}.",
        "sla.warning": lambda: "SLA warning: the deadline is near.",
        "sla.breached": lambda: "SLA breached.",
        "case.effort_voucher_owed": lambda: f"Effort voucher owed: {d.get('amount')} {d.get('currency')}.",
        "case.assigned": lambda: f"Assigned to {d.get('assignee')} by {d.get('assigned_by')}.",
        "case.note_added": lambda: f"Note by {d.get('by')}: {d.get('note')}",
    }
    told = says.get(kind)
    return Told(t.time, told() if told is not None else kind)
