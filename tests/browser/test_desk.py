"""The escalation desk as a person uses it: in Chromium, against the recovery service run
as a process on the real broker and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from playwright.async_api import Page, expect

from tests.browser.conftest import DeskServer
from tests.helpers import ServiceProcess, TopicReader, cloudevent, produce, produce_events

NOW = datetime.now(UTC)


def charge(customer: str, charge_id: str, amount: str, days_ago: int) -> dict[str, Any]:
    return cloudevent("billing.charge.posted.v1", {
        "charge_id": charge_id, "customer_id": customer, "amount": amount, "currency": "USD",
        "kind": "purchase", "description": "Broadband repair visit",
        "posted_at": (NOW - timedelta(days=days_ago)).isoformat(),
    }, customer)  # fmt: skip


def complaint(customer: str, complaint_id: str, charge_id: str | None = None, claimed: str = "20.00",
              filed_minutes_ago: int = 5) -> dict[str, Any]:  # fmt: skip
    data: dict[str, Any] = {
        "complaint_id": complaint_id,
        "customer": {"id": customer, "name": "Ana Privada", "email": "ana.private@example.com", "locale": "es-CO"},
        "channel": "phone", "category": "service_failure", "claimed_amount": claimed, "currency": "USD",
        "description": "El servicio no funcionó.", "filed_at": (NOW - timedelta(minutes=filed_minutes_ago)).isoformat(),
    }  # fmt: skip
    if charge_id:
        data["charge_id"] = charge_id
    return cloudevent("complaint.filed.v1", data, customer)


async def until(pool: asyncpg.Pool, sql: str, *args: object, timeout: float = 60) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await pool.fetchval(sql, *args)
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, f"nothing from {sql} within {timeout} s"
        await asyncio.sleep(0.2)


async def escalated_case(desk: DeskServer, customer: str, *, with_charges: bool = False, minutes_ago: int = 5) -> str:
    """A complaint that goes to a person; with the customer's earlier charges of its kind."""
    boot, env = desk.env["KAFKA_BOOTSTRAP_SERVERS"], desk.env
    charge_id = None
    if with_charges:
        charge_id = f"{customer}-big"
        history = [charge(customer, f"{customer}-{i}", f"{30 + i}.00", 90 - 30 * i) for i in range(3)]
        await produce_events(boot, env["TOPIC_CHARGES"], [*history, charge(customer, charge_id, "2000.00", 1)])
        await until(desk.pool, "SELECT 1 FROM rm_charges WHERE charge_id = $1", charge_id)
    await produce_events(boot, env["TOPIC_COMPLAINTS"], [complaint(customer, f"cmp-{customer}", charge_id,
                                                                   filed_minutes_ago=minutes_ago)])  # fmt: skip
    return str(await until(desk.pool, "SELECT case_id FROM rm_cases WHERE customer_id = $1 AND status = 'escalated'",
                           customer))  # fmt: skip


async def signed_in(page: Page, desk: DeskServer, person: str, role: str = "agent") -> None:
    await page.goto(f"{desk.url}/desk/")
    await page.get_by_label("Your sign-in token").fill(await desk.token(person, role))
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Queue")).to_be_visible()


async def test_sign_in_sets_a_strict_http_only_session_and_a_bad_token_is_refused(page: Page, desk: DeskServer) -> None:
    await page.goto(f"{desk.url}/desk/queue")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await page.get_by_label("Your sign-in token").fill("rsk_" + "x" * 43)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("not valid")
    await signed_in(page, desk, "ana")
    await expect(page.locator("header")).to_contain_text("ana (agent)")
    cookie = next(c for c in await page.context.cookies() if c["name"] == "desk_session")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    response = await page.goto(f"{desk.url}/desk/queue")
    assert response is not None
    headers = response.headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "unsafe-inline" not in headers["content-security-policy"]


async def test_the_queue_puts_mine_first_then_by_priority_and_time_left_and_counts_down(
    page: Page, desk: DeskServer
) -> None:
    older = await escalated_case(desk, "c-old", minutes_ago=60)
    newer = await escalated_case(desk, "c-new", minutes_ago=5)
    await signed_in(page, desk, "ana")
    rows = page.locator("#queue-rows tr")
    await expect(rows).to_have_count(2)
    assert [await r.get_attribute("data-case") for r in await rows.all()] == [older, newer]
    countdown = page.locator(f"tr[data-case='{older}'] time.countdown")
    await expect(countdown).to_contain_text("left")
    first = await countdown.text_content()
    await page.wait_for_timeout(1500)
    assert await countdown.text_content() != first
    # Claimed, the newer case is mine: first, and the queue shows it without a reload.
    await desk.pool.execute("SELECT 1")  # the claim goes through the page
    await page.goto(f"{desk.url}/desk/cases/{newer}")
    await page.get_by_role("button", name="Claim").click()
    await page.goto(f"{desk.url}/desk/queue")
    assert [await r.get_attribute("data-case") for r in await rows.all()] == [newer, older]
    await expect(page.locator(f"tr[data-case='{newer}'] td").last).to_have_text("mine")
    await page.set_viewport_size({"width": 390, "height": 800})
    await expect(page.get_by_label("Case, customer, complaint, charge or order id")).to_be_visible()
    await page.get_by_label("Case, customer, complaint, charge or order id").fill("c-old")
    await page.get_by_role("button", name="Search").click()
    await expect(page.locator("#queue-rows tr")).to_have_count(1)
    assert "c-old" not in page.url


async def test_a_case_shows_its_timeline_the_charge_chart_and_what_the_policy_would_do(
    page: Page, desk: DeskServer
) -> None:
    case_id = await escalated_case(desk, "c-chart", with_charges=True)
    await signed_in(page, desk, "ana")
    await page.goto(f"{desk.url}/desk/cases/{case_id}")
    timeline = page.locator("#timeline")
    await expect(timeline).to_contain_text("Case opened")
    await expect(timeline).to_contain_text("Complaint 1 filed: service_failure")
    await expect(timeline).to_contain_text("Escalated")
    await expect(page.locator("#chart rect")).to_have_count(4)
    await expect(page.locator("#chart line.usual")).to_have_count(1)
    await expect(page.locator("#paid")).to_have_text("0 USD")
    await expect(page.locator("#policy-outcome")).to_contain_text("escalated")
    await expect(page.locator(".preview")).to_be_visible()
    audit = await desk.pool.fetchval(
        "SELECT count(*) FROM events WHERE event_type = 'recovery.audit.recorded.v1'"
        " AND data ->> 'action' = 'case.read' AND data ->> 'case_id' = $1",
        case_id,
    )
    assert audit >= 1


async def test_a_decision_made_on_the_desk_is_on_kafka_in_the_persons_name_and_the_apology_follows(
    page: Page, desk: DeskServer, tmp_path: Path
) -> None:
    notifier = ServiceProcess("notifier-service", {**desk.env, "HTTP_PORT": "0"}, tmp_path / "notifier.log").start()
    case_id = await escalated_case(desk, "c-decide")
    await signed_in(page, desk, "sam", "supervisor")
    await page.goto(f"{desk.url}/desk/cases/{case_id}/decide")
    await page.get_by_label("Remedy").select_option("voucher")
    await page.get_by_label("Amount (refund, waiver, voucher)").fill("15.00")
    await page.get_by_label("Currency").fill("USD")
    await page.get_by_label("Note (kept on the case, not sent)").fill("goodwill for the outage")
    await page.get_by_role("button", name="Review").click()
    await expect(page.locator("#confirm-summary")).to_contain_text("voucher 15.00 USD")
    await page.get_by_role("button", name="Confirm and decide").click()
    await expect(page.get_by_role("status")).to_contain_text("Decided")
    async with TopicReader(desk.env["KAFKA_BOOTSTRAP_SERVERS"], desk.env["TOPIC_DECISIONS"]) as decisions:
        made = await decisions.wait_for(lambda e: e["type"] == "recovery.decision.made.v1"
                                        and e["data"]["case_id"] == case_id, 60)  # fmt: skip
    assert made[0]["data"]["decided_by"] == "agent:sam"
    try:
        async with TopicReader(desk.env["KAFKA_BOOTSTRAP_SERVERS"], desk.env["TOPIC_NOTIFICATIONS"]) as emails:
            await emails.wait_for(lambda e: e["type"] == "notification.email.requested.v1"
                                  and e["data"]["case_id"] == case_id and e["data"]["template"] != "escalation_ack",
                                  90)  # fmt: skip
    finally:
        notifier.stop()
    await page.reload()
    await expect(page.locator("#case-status")).to_contain_text("decided")


async def test_a_refused_decision_shows_its_error_next_to_the_field(page: Page, desk: DeskServer) -> None:
    case_id = await escalated_case(desk, "c-refuse", with_charges=True)
    await signed_in(page, desk, "sam", "supervisor")
    await page.goto(f"{desk.url}/desk/cases/{case_id}/decide")
    await page.get_by_label("Remedy").select_option("refund")
    await page.get_by_label("Amount (refund, waiver, voucher)").fill("5000.00")
    await page.get_by_role("button", name="Review").click()
    await page.get_by_role("button", name="Confirm and decide").click()
    error = page.locator("#amount-error")
    await expect(error).to_be_visible()
    await expect(page.get_by_label("Amount (refund, waiver, voucher)")).to_have_attribute("aria-describedby",
                                                                                          "amount-error")  # fmt: skip
    await page.get_by_label("Amount (refund, waiver, voucher)").fill("12,5")
    await page.get_by_role("button", name="Review").click()
    await expect(page.locator("#amount-error")).to_contain_text("12.50")


async def test_claim_and_reassign(page: Page, desk: DeskServer) -> None:
    case_id = await escalated_case(desk, "c-claim")
    await signed_in(page, desk, "ana")
    await page.goto(f"{desk.url}/desk/cases/{case_id}")
    await page.get_by_role("button", name="Claim").click()
    await expect(page.locator("#assignee")).to_have_text("ana")
    await page.get_by_label("Hand to (person id)").fill("owner-grace")
    await page.get_by_role("button", name="Reassign").click()
    await expect(page.locator("#assignee")).to_have_text("owner-grace")
    await page.get_by_label("Note (not sent to the customer)").fill("handed over: English speaker")
    await page.get_by_role("button", name="Add note").click()
    await expect(page.locator("#timeline")).to_contain_text("Note by agent:ana: handed over")
    await expect(page.locator("#timeline")).to_contain_text("Assigned to owner-grace by agent:ana")


async def test_a_dead_letter_redriven_from_the_desk_is_decided(page: Page, desk: DeskServer) -> None:
    boot, env = desk.env["KAFKA_BOOTSTRAP_SERVERS"], desk.env
    bad = complaint("c-dlq", "cmp-dlq")
    del bad["data"]["channel"]  # invalid: dead-lettered
    await produce(boot, env["TOPIC_COMPLAINTS"], [("c-dlq", json.dumps(bad).encode())])
    await signed_in(page, desk, "sam", "supervisor")
    letter = page.locator("article.letter")
    for _ in range(60):
        await page.goto(f"{desk.url}/desk/dead-letters")
        if await letter.count():
            break
        await asyncio.sleep(1)
    await expect(letter.first).to_contain_text("invalid_data")
    fixed = complaint("c-dlq", "cmp-dlq")
    await letter.first.get_by_label("Fixed message").fill(json.dumps(fixed))
    await letter.first.get_by_role("button", name="Redrive").click()
    await expect(page.locator("#redrive-sent")).to_contain_text("Sent")
    await until(desk.pool, "SELECT case_id FROM rm_cases WHERE customer_id = 'c-dlq'")


async def test_a_what_if_runs_in_the_page(page: Page, desk: DeskServer) -> None:
    await escalated_case(desk, "c-whatif")
    await signed_in(page, desk, "ana")
    await page.goto(f"{desk.url}/desk/whatif")
    await page.get_by_label("A policy file").select_option("default.toml")
    await page.get_by_role("button", name="Run").click()
    await expect(page.locator("body")).to_contain_text("complaints")
    await page.goto(f"{desk.url}/desk/whatif")
    await page.get_by_label("Or upload one (TOML)").set_input_files(
        files={"name": "bad.toml", "mimeType": "text/plain", "buffer": b"sla_hours = 'soon'"}
    )
    await page.get_by_role("button", name="Run").click()
    await expect(page.locator("#policy-error")).to_contain_text("bad.toml")
