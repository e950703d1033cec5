"""The desk's failure paths over HTTP on real PostgreSQL (and the broker, for the dead
letters): a read that cannot be audited answers 503 and shows nothing, a conflicting
decision or claim 409, a form without its CSRF token is refused, a role that may not act is
refused, every desk answer carries the security headers, and a person who is not signed in
goes to the sign-in page. The cases are made by the real application from CloudEvents."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from services.common.clock import ManualClock
from services.common.http import probes_app
from services.common.settings import CommonSettings
from services.recovery.application import RecoveryService
from services.recovery.desk import reads
from services.recovery.desk.guard import CSP, CSRF, SESSION
from services.recovery.desk.web import Desk, mount_desk, report_csp
from services.recovery.domain.policy import load_policy
from services.recovery.domain.roster import load_roster
from services.recovery.identity import Authenticator, IdentityUnavailable, People, Role
from services.recovery.settings import RecoverySettings
from tests.helpers import VOUCHERS, sign_in
from tests.integration.test_audit import _FAIL_AUDIT
from tests.integration.test_four_eyes import _record
from tests.integration.test_ops_api import NOW, itunes_charge, itunes_complaint, service_failure

CSRF_TOKEN = "csrf-token-for-the-tests-0123456789abcdef"


@dataclass
class World:
    app: FastAPI
    service: RecoveryService
    case_id: str
    tokens: dict[str, str]  # person -> sign-in token

    def client(self, person: str | None, *, csrf: str = CSRF_TOKEN) -> httpx.AsyncClient:
        """A browser of ``person`` (signed in; None: not), holding the CSRF cookie ``csrf``."""
        cookies = {CSRF: csrf, **({SESSION: self.tokens[person]} if person else {})}
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://desk",
                                 cookies=cookies)  # fmt: skip


def _app(pool: asyncpg.Pool, service: RecoveryService, settings: RecoverySettings,
         signin: Authenticator | None) -> FastAPI:  # fmt: skip
    async def ready() -> bool:
        return True

    app = probes_app(ready, "recovery-service", "test")
    mount_desk(app, Desk(settings, lambda: pool, lambda: service, lambda: None, signin))
    return app


@pytest.fixture
async def world(pool: asyncpg.Pool, common_settings: CommonSettings) -> World:
    """A service failure escalated to a person, under an approval limit of 10.00 USD."""
    assert isinstance(common_settings, RecoverySettings)
    policy = load_policy().model_copy(update={"approval_limits": {"USD": Decimal("10.00")}})
    service = RecoveryService(pool, common_settings, policy, load_roster(), ManualClock(NOW), vouchers=VOUCHERS)
    assert (await service.handle_records([_record(service_failure())])).escalations == 1
    case_id = await pool.fetchval("SELECT case_id FROM rm_cases WHERE status = 'escalated'")
    people: dict[str, Role] = {"ana": "agent", "sam": "supervisor", "audrey": "auditor"}
    tokens = {p: (await sign_in(pool, p, role))["Authorization"].removeprefix("Bearer ") for p, role in people.items()}
    return World(_app(pool, service, common_settings, Authenticator(lambda: pool)), service, case_id, tokens)


def _form(**fields: str) -> dict[str, str]:
    return {"csrf": CSRF_TOKEN, **fields}


async def test_a_read_that_cannot_be_audited_answers_503_and_shows_no_case(world: World, pool: asyncpg.Pool) -> None:
    await pool.execute(_FAIL_AUDIT)
    async with world.client("ana") as ana, world.client("sam") as sam:
        reads = [
            await ana.get("/desk/queue"),
            await ana.get("/desk/queue/rows"),
            await ana.get(f"/desk/cases/{world.case_id}"),
            await ana.get(f"/desk/cases/{world.case_id}/decide"),
            await ana.post("/desk/search", data=_form(q="c-esc")),
            await sam.get("/desk/dead-letters"),
        ]
        for answer in reads:
            assert answer.status_code == 503, (answer.request.url, answer.text[:300])
            assert "could not be recorded in the audit trail" in answer.text
            assert world.case_id not in answer.text
            assert "c-esc" not in answer.text.replace('value="c-esc"', "")
        await pool.execute("DROP TRIGGER refuse_audit ON events")
        assert (await ana.get(f"/desk/cases/{world.case_id}")).status_code == 200
        assert world.case_id in (await ana.get("/desk/queue")).text


async def test_a_decision_on_a_decided_case_and_one_while_another_awaits_approval_conflict(world: World) -> None:
    decide = f"/desk/cases/{world.case_id}/decide"
    refund = {"remedy": "voucher", "amount": "20.00", "currency": "USD", "step": "confirm"}
    async with world.client("ana") as ana, world.client("sam") as sam:
        proposed = await ana.post(decide, data=_form(**refund))  # over ana's limit: it awaits a supervisor
        assert proposed.status_code == 303
        assert proposed.headers["location"] == f"/desk/cases/{world.case_id}?done=proposed"
        again = await ana.post(decide, data=_form(**{**refund, "amount": "5.00"}))
        assert again.status_code == 409, again.text
        assert 'id="remedy-error"' in again.text
        decided = await sam.post(decide, data=_form(**{**refund, "amount": "5.00"}))
        assert decided.status_code == 409  # the proposal waits for its approval first
        await world.service.approve_decision(world.case_id, "sam")
        late = await sam.post(decide, data=_form(**{**refund, "amount": "5.00"}))
        assert late.status_code == 409, late.text
        claimed = await ana.post(f"/desk/cases/{world.case_id}/claim", data=_form())
        assert claimed.status_code == 409, claimed.text
        assert 'id="action-error"' in claimed.text


async def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(world: World, pool: asyncpg.Pool) -> None:
    before = await pool.fetchval("SELECT max(global_position) FROM events WHERE event_type NOT LIKE '%audit%'")
    case = f"/desk/cases/{world.case_id}"
    async with world.client("sam", csrf="the-cookie") as sam, world.client(None, csrf="the-cookie") as nobody:
        forms = {
            f"{case}/decide": {"remedy": "voucher", "amount": "5.00", "currency": "USD", "step": "confirm"},
            f"{case}/claim": {},
            f"{case}/reassign": {"assignee": "grace"},
            f"{case}/note": {"note": "a note"},
            "/desk/dead-letters/some-letter/redrive": {"fixed": ""},
            "/desk/whatif": {"policy": "default.toml"},
            "/desk/search": {"q": "c-esc"},
        }
        for url, fields in forms.items():
            for csrf in ("another-token", None):
                data = {**fields, **({"csrf": csrf} if csrf else {})}
                answer = await sam.post(url, data=data)
                assert answer.status_code in (403, 422), (url, answer.status_code, answer.text[:300])
                assert "the form expired" in answer.text, url
        signin = await nobody.post("/desk/signin", data={"csrf": "another-token", "token": world.tokens["sam"]})
        assert signin.status_code == 403
        assert SESSION not in signin.cookies
    after = await pool.fetchval("SELECT max(global_position) FROM events WHERE event_type NOT LIKE '%audit%'")
    assert after == before
    assert await pool.fetchval("SELECT assignee FROM rm_cases WHERE case_id = $1", world.case_id) != "grace"


async def test_an_auditor_reads_but_may_not_act_and_an_agent_may_not_redrive(world: World, pool: asyncpg.Pool) -> None:
    case = f"/desk/cases/{world.case_id}"
    assignee = await pool.fetchval("SELECT assignee FROM rm_cases WHERE case_id = $1", world.case_id)
    async with world.client("audrey") as audrey, world.client("ana") as ana:
        assert (await audrey.get(case)).status_code == 200
        for url, fields in ((f"{case}/claim", {}), (f"{case}/reassign", {"assignee": "grace"}),
                            (f"{case}/note", {"note": "a note"})):  # fmt: skip
            refused = await audrey.post(url, data=_form(**fields))
            assert refused.status_code == 403, (url, refused.text[:300])
            assert 'id="action-error"' in refused.text
        decided = await audrey.post(f"{case}/decide", data=_form(remedy="repair", step="confirm"))
        assert decided.status_code == 403
        assert 'id="remedy-error"' in decided.text
        redrive = await ana.post("/desk/dead-letters/some-letter/redrive", data=_form(fixed=""))
        assert redrive.status_code == 422
        assert 'id="redrive-error"' in redrive.text
    assert await pool.fetchval("SELECT assignee FROM rm_cases WHERE case_id = $1", world.case_id) == assignee


@pytest.mark.parametrize(
    ("fields", "field", "says"),
    [
        ({"remedy": "refund", "amount": "lots"}, "amount", "An amount"),
        ({"remedy": "refund", "amount": "5.00", "currency": "dollars"}, "currency", ""),
        ({"remedy": "teleport"}, "remedy", "Choose a remedy"),
        ({"remedy": "decline", "reason_text": " "}, "reason_text", "Say why"),
        ({"remedy": "refund", "amount": "-5"}, "amount", ""),
    ],
)
async def test_a_form_the_domain_refuses_names_its_field(
    world: World, fields: dict[str, str], field: str, says: str
) -> None:
    async with world.client("sam") as sam:
        refused = await sam.post(f"/desk/cases/{world.case_id}/decide", data=_form(step="review", **fields))
    assert refused.status_code == 422, refused.text[:300]
    error = re.search(rf'<p class="error" id="{field}-error" role="alert">([^<]*)</p>', refused.text)
    assert error is not None, refused.text
    assert says in error.group(1)


async def test_every_desk_answer_carries_the_security_headers_and_others_do_not(world: World) -> None:
    async with world.client("ana") as ana, world.client(None) as nobody:
        answers = [
            await nobody.get("/desk/queue"),  # a redirect to the sign-in
            await nobody.get("/desk/signin"),
            await nobody.get("/desk/static/desk.js"),
            await ana.get("/desk/queue"),
            await ana.get("/desk/cases/no-such-case"),
            await ana.get("/desk/whatif"),
        ]
        report = await ana.post("/desk/whatif", data=_form(policy="default.toml"))
        probe = await nobody.get("/healthz")
    for answer in answers:
        h = answer.headers
        assert h["content-security-policy"] == CSP, answer.request.url
        assert "frame-ancestors 'none'" in h["content-security-policy"]
        assert "unsafe-inline" not in h["content-security-policy"]
        assert (h["x-frame-options"], h["x-content-type-options"]) == ("DENY", "nosniff")
        assert (h["referrer-policy"], h["cache-control"]) == ("no-referrer", "no-store")
    assert [a.status_code for a in answers] == [303, 200, 200, 200, 404, 200]
    assert report.status_code == 200
    assert report.headers["content-security-policy"] == report_csp(report.text)
    assert "unsafe-inline" not in report.headers["content-security-policy"]
    assert "style-src 'sha256-" in report.headers["content-security-policy"]
    assert report.headers["x-frame-options"] == "DENY"
    assert "content-security-policy" not in probe.headers


async def test_without_a_valid_session_every_page_goes_to_the_sign_in(world: World, pool: asyncpg.Pool) -> None:
    case = f"/desk/cases/{world.case_id}"
    pages = [("GET", "/desk"), ("GET", "/desk/queue"), ("GET", "/desk/queue/rows"), ("POST", "/desk/search"),
             ("GET", case), ("GET", f"{case}/decide"), ("POST", f"{case}/decide"), ("POST", f"{case}/claim"),
             ("GET", "/desk/dead-letters"), ("POST", "/desk/dead-letters/x/redrive"), ("GET", "/desk/whatif"),
             ("POST", "/desk/whatif")]  # fmt: skip
    assert await People(pool).disable("ana")
    async with world.client("ana") as disabled:
        for method, url in pages:
            answer = await disabled.request(method, url, data=_form() if method == "POST" else None)
            assert answer.status_code == 303, (method, url)
            assert answer.headers["location"] in ("/desk/signin", "/desk/queue"), (method, url)
    async with world.client(None) as nobody:
        bad = await nobody.post("/desk/signin", data=_form(token="rsk_" + "x" * 43))
        assert bad.status_code == 401
        good = await nobody.post("/desk/signin", data=_form(token=world.tokens["sam"]))
        assert (good.status_code, good.headers["location"]) == (303, "/desk/queue")
        assert good.cookies[SESSION] == world.tokens["sam"]
        out = await nobody.post("/desk/signout", data=_form())
        assert (out.status_code, out.headers["location"]) == (303, "/desk/signin")


async def test_with_no_way_to_sign_in_or_the_identity_store_down_the_sign_in_answers_503(
    world: World, pool: asyncpg.Pool, common_settings: CommonSettings
) -> None:
    class Down(Authenticator):
        async def authenticate(self, token: str) -> object:  # type: ignore[override]
            raise IdentityUnavailable("the identity store does not answer")

    assert isinstance(common_settings, RecoverySettings)
    for signin, says in ((None, "No way to sign in"), (Down(lambda: pool), "does not answer")):
        app = _app(pool, world.service, common_settings, signin)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://desk", cookies={CSRF: CSRF_TOKEN}) as c:
            answer = await c.post("/desk/signin", data=_form(token=world.tokens["ana"]))
            assert answer.status_code == 503
            assert says in answer.text
            assert (await c.get("/desk/queue")).headers["location"] == "/desk/signin"


async def test_refused_forms_name_their_field_and_a_decided_case_shows_what_the_policy_did(
    world: World, pool: asyncpg.Pool
) -> None:
    await world.service.handle_records([_record(itunes_charge())])
    await world.service.handle_records([_record(itunes_complaint())])
    decided = await pool.fetchval("SELECT case_id FROM rm_cases WHERE status = 'decided'")
    case = f"/desk/cases/{world.case_id}"
    async with world.client("sam") as sam:
        page = await sam.get(f"/desk/cases/{decided}")
        assert page.status_code == 200
        assert 'id="policy-outcome"' in page.text
        assert "resolved" in page.text
        refusals = [
            (f"{case}/reassign", {"assignee": "two words"}, 'id="assignee-error"'),
            (f"{case}/note", {"note": " "}, 'id="note-error"'),
            ("/desk/whatif", {"policy": "no-such.toml"}, 'id="policy-error"'),
            ("/desk/dead-letters/some-letter/redrive", {"fixed": ""}, "producer is not running"),
            ("/desk/cases/no-such-case/decide", {"remedy": "repair", "step": "confirm"}, "There is no such case"),
        ]
        for url, fields, says in refusals:
            answer = await sam.post(url, data=_form(**fields))
            assert answer.status_code in (404, 422), (url, answer.status_code, answer.text[:300])
            assert says in answer.text, url
        nothing = await sam.post("/desk/search", data=_form(q="   "))
        assert nothing.status_code == 200
        assert "Nothing here." in nothing.text
        found = await sam.post("/desk/search", data=_form(q="c-film"))
        assert decided in found.text


async def test_the_queue_pages_follow_a_keyset_cursor_and_a_bad_cursor_starts_from_the_front(
    world: World, pool: asyncpg.Pool
) -> None:
    later = service_failure()
    later["data"] |= {"complaint_id": "cmp-esc-2", "customer": {**later["data"]["customer"], "id": "c-esc-2"}}
    later["subject"] = "c-esc-2"
    assert (await world.service.handle_records([_record(later)])).escalations == 1
    first = await reads.queue(pool, None, reads.Filters(), limit=1)
    assert first.next_cursor is not None
    second = await reads.queue(pool, None, reads.Filters(), first.next_cursor, limit=1)
    assert second.next_cursor is None
    ids = [first.everyone[0].case.case_id, second.everyone[0].case.case_id]
    assert len(set(ids)) == 2
    assert world.case_id in ids
    again = await reads.queue(pool, None, reads.Filters(), "not-a-cursor", limit=1)
    assert again.everyone == first.everyone
    async with world.client("ana") as ana:
        page = await ana.get("/desk/queue", params={"after": first.next_cursor})
    assert page.status_code == 200
    assert f'data-case="{ids[1]}"' in page.text
    assert f'data-case="{ids[0]}"' not in page.text
