"""The desk's quality bar in Chromium: worked with the keyboard alone, every field labelled,
readable at 1280 and 390 px wide, no personal data in any URL, and no page breaking its
Content-Security-Policy (the conftest's watch fails any test whose page does)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from urllib.parse import quote, quote_plus

from playwright.async_api import Locator, Page, Route, expect

from tests.browser.conftest import DeskServer, Seen
from tests.browser.test_desk import complaint, escalated_case, signed_in
from tests.helpers import produce

WIDTHS = (1280, 390)
CUSTOMER = "c-quality"  # complaint(): name "Ana Privada", email ana.private@example.com

UNLABELLED = """() => [...document.querySelectorAll("input, select, textarea")]
  .filter(e => e.type !== "hidden")
  .filter(e => {
    const text = n => ((n && n.textContent) || "").trim();
    const byLabel = [...(e.labels || [])].some(l => text(l));
    const byAria = (e.getAttribute("aria-label") || "").trim();
    const byIds = (e.getAttribute("aria-labelledby") || "").split(/\\s+/).filter(Boolean)
      .some(id => text(document.getElementById(id)));
    return !(byLabel || byAria || byIds);
  })
  .map(e => e.outerHTML)"""
OVERFLOW = """() => ({
  page: document.scrollingElement.scrollWidth - window.innerWidth,
  inner: [...document.querySelectorAll("main *")]
    .filter(e => ["auto", "scroll"].includes(getComputedStyle(e).overflowX) && e.scrollWidth > e.clientWidth + 1)
    .map(e => e.outerHTML.slice(0, 120)),
})"""
FOCUS_SHOWN = """e => e === document.activeElement && e.matches(":focus-visible")
  && getComputedStyle(e).outlineStyle !== "none" && parseFloat(getComputedStyle(e).outlineWidth) >= 2"""


async def dead_letter(page: Page, desk: DeskServer) -> None:
    """A complaint the service cannot read, on the dead-letter page."""
    bad = complaint("c-quality-dlq", "cmp-quality-dlq")
    del bad["data"]["channel"]
    await produce(desk.env["KAFKA_BOOTSTRAP_SERVERS"], desk.env["TOPIC_COMPLAINTS"],
                  [("c-quality-dlq", json.dumps(bad).encode())])  # fmt: skip
    for _ in range(60):
        await page.goto(f"{desk.url}/desk/dead-letters")
        if await page.locator("article.letter").count():
            return
        await asyncio.sleep(1)
    raise AssertionError("no dead letter on the page within 60 s")


async def tour(page: Page, desk: DeskServer, case_id: str) -> AsyncIterator[tuple[str, list[Locator]]]:
    """Every page of the desk, as a supervisor reaches it, with the controls it is for."""
    await page.context.clear_cookies()
    await page.goto(f"{desk.url}/desk/signin")
    yield "sign-in", [page.get_by_label("Your sign-in token"), page.get_by_role("button", name="Sign in")]
    await signed_in(page, desk, "sam", "supervisor")
    case_link = page.locator(f"tr[data-case='{case_id}'] a")
    search = [page.get_by_label("Case, customer, complaint, charge or order id"),
              page.get_by_role("button", name="Search")]  # fmt: skip
    yield "queue", [case_link, page.get_by_role("button", name="Filter"), *search]
    await page.goto(f"{desk.url}/desk/queue?status=escalated&priority=&owner=&category=service_failure")
    yield "queue, filtered", [case_link, page.get_by_label("Category"), page.get_by_role("button", name="Filter")]
    await search[0].fill(CUSTOMER)
    await search[1].click()
    await expect(page.get_by_role("heading", name="Search results")).to_be_visible()
    yield "search results", [case_link, *search]
    await page.goto(f"{desk.url}/desk/cases/{case_id}")
    yield "case", [page.get_by_role("link", name="Decide"), page.get_by_role("button", name="Claim"),
                   page.get_by_role("button", name="Reassign"), page.locator("#chart"),
                   page.get_by_role("button", name="Add note")]  # fmt: skip
    await page.goto(f"{desk.url}/desk/cases/{case_id}/decide")
    yield "decide", [page.get_by_label("Remedy"), page.get_by_label("Amount (refund, waiver, voucher)"),
                     page.get_by_role("button", name="Review")]  # fmt: skip
    await page.get_by_label("Remedy").select_option("voucher")
    await page.get_by_label("Amount (refund, waiver, voucher)").fill("15.00")
    await page.get_by_role("button", name="Review").click()
    await expect(page.get_by_role("heading", name="Confirm your decision")).to_be_visible()
    yield "confirm", [page.locator("#confirm-summary"), page.get_by_role("button", name="Confirm and decide")]
    await page.goto(f"{desk.url}/desk/dead-letters")
    letter = page.locator("article.letter").first
    yield "dead letters", [letter, letter.get_by_label("Fixed message"), letter.get_by_role("button", name="Redrive")]
    await page.goto(f"{desk.url}/desk/whatif")
    yield "what-if", [page.get_by_label("A policy file"), page.get_by_role("button", name="Run")]


async def a_case_and_a_dead_letter(page: Page, desk: DeskServer) -> str:
    case_id = await escalated_case(desk, CUSTOMER, with_charges=True)
    await signed_in(page, desk, "sam", "supervisor")
    await dead_letter(page, desk)
    return case_id


async def tab_to(page: Page, target: Locator, key: str = "Tab", limit: int = 60) -> None:
    """Press ``key`` until ``target`` has the focus, and see the focus drawn."""
    for _ in range(limit):
        if await target.evaluate("e => e === document.activeElement"):
            assert await target.evaluate(FOCUS_SHOWN), "the focused control shows no focus outline"
            return
        await page.keyboard.press(key)
    raise AssertionError(f"{key} never reached {target}")


async def test_a_case_is_decided_with_the_keyboard_alone(page: Page, desk: DeskServer) -> None:
    case_id = await escalated_case(desk, "c-keys")
    await page.goto(f"{desk.url}/desk/signin")
    # The skip link comes first, shows when focused, and leads into the page's content.
    await page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    await tab_to(page, skip, limit=1)
    box = await skip.bounding_box()
    assert box is not None
    assert (box["x"], box["y"]) >= (0, 0)
    await page.keyboard.press("Enter")
    await page.keyboard.press("Tab")
    await expect(page.get_by_label("Your sign-in token")).to_be_focused()
    await page.keyboard.type(await desk.token("sam", "supervisor"))
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Queue")).to_be_visible()

    await tab_to(page, page.locator(f"tr[data-case='{case_id}'] a"))
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name=re.compile("^Case "))).to_be_visible()
    await tab_to(page, page.get_by_role("link", name="Decide"))
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Decide", exact=True)).to_be_visible()

    remedy = page.get_by_label("Remedy")
    await tab_to(page, remedy)
    await page.keyboard.press("ArrowDown")  # refund -> charge waiver
    await page.keyboard.press("ArrowDown")  # -> voucher
    await expect(remedy).to_have_value("voucher")
    await page.keyboard.press("Tab")
    await expect(page.get_by_label("Amount (refund, waiver, voucher)")).to_be_focused()
    await page.keyboard.type("15.00")
    note = page.get_by_label("Note (kept on the case, not sent)")
    await tab_to(page, note)
    await page.keyboard.type("goodwill, by keyboard")
    await page.keyboard.press("Shift+Tab")
    await expect(page.get_by_label("Decline reason, as the customer reads it")).to_be_focused()
    await tab_to(page, page.get_by_role("button", name="Review"))
    await page.keyboard.press("Space")
    await expect(page.locator("#confirm-summary")).to_contain_text("voucher 15.00 USD. Note: goodwill, by keyboard")

    await tab_to(page, page.get_by_role("button", name="Confirm and decide"))
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("status")).to_contain_text("Decided")
    await expect(page.locator("#case-status")).to_contain_text("decided")


async def test_every_field_on_every_page_has_an_accessible_name(page: Page, desk: DeskServer) -> None:
    case_id = await a_case_and_a_dead_letter(page, desk)
    fields: dict[str, int] = {}
    async for name, _controls in tour(page, desk, case_id):
        assert await page.evaluate(UNLABELLED) == [], f"{name}: fields without a label"
        found = page.locator("input:not([type=hidden]), select, textarea")
        for field in await found.all():
            await expect(field).to_have_accessible_name(re.compile(r"\S"))
        fields[name] = await found.count()
    assert fields == {"sign-in": 1, "queue": 5, "queue, filtered": 5, "search results": 5, "case": 2,
                      "decide": 6, "confirm": 0, "dead letters": 2, "what-if": 2}  # fmt: skip


async def test_every_page_fits_1280_and_390_pixels_wide_with_its_controls_in_view(page: Page, desk: DeskServer) -> None:
    case_id = await a_case_and_a_dead_letter(page, desk)
    for width in WIDTHS:
        await page.set_viewport_size({"width": width, "height": 900})
        async for name, controls in tour(page, desk, case_id):
            overflow = await page.evaluate(OVERFLOW)
            assert overflow["inner"] == [], f"{name} at {width} px scrolls sideways inside: {overflow['inner']}"
            assert overflow["page"] <= 0, f"{name} at {width} px scrolls sideways by {overflow['page']} px"
            for control in controls:
                await expect(control).to_be_visible()
                box = await control.bounding_box()
                assert box is not None, f"{name} at {width} px: {control} has no box"
                in_view = box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5
                assert in_view, f"{name} at {width} px: {control} is out of view at {box}"
    # At 390 px the queue is a stack of rows, each cell under its column's name.
    await page.goto(f"{desk.url}/desk/queue")
    row = page.locator(f"tr[data-case='{case_id}']")
    assert await row.evaluate("e => getComputedStyle(e).display") == "block"
    assert await page.locator("#queue thead").evaluate("e => e.getBoundingClientRect().right <= 0")


async def test_no_url_of_a_whole_session_carries_personal_data(page: Page, desk: DeskServer, seen: Seen) -> None:
    case_id = await a_case_and_a_dead_letter(page, desk)
    token = await desk.token("ana", "agent")
    note, reason = "Spoke to her at home about the outage", "Her line was repaired the same day"
    await page.context.clear_cookies()
    await page.goto(f"{desk.url}/desk/signin")
    await page.get_by_label("Your sign-in token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Queue")).to_be_visible()
    await page.wait_for_timeout(5500)  # the queue refreshes itself
    await page.get_by_label("Category").fill("service_failure")
    await page.get_by_role("button", name="Filter").click()
    await page.get_by_label("Case, customer, complaint, charge or order id").fill(CUSTOMER)
    await page.get_by_role("button", name="Search").click()
    await page.locator(f"tr[data-case='{case_id}'] a").click()
    await page.get_by_role("button", name="Claim").click()
    await expect(page.locator("#assignee")).to_have_text("ana")
    await page.get_by_label("Note (not sent to the customer)").fill(note)
    await page.get_by_role("button", name="Add note").click()
    await expect(page.locator("#timeline")).to_contain_text(note)
    await page.get_by_role("link", name="Decide").click()
    await page.get_by_label("Remedy").select_option("decline")
    await page.get_by_label("Decline reason, as the customer reads it").fill(reason)
    await page.get_by_label("Note (kept on the case, not sent)").fill(note)
    await page.get_by_role("button", name="Review").click()
    await page.get_by_role("button", name="Confirm and decide").click()
    await expect(page.get_by_role("status")).to_contain_text(re.compile("Decided|approval"))
    await page.get_by_role("link", name="Dead letters").click()
    await expect(page.locator("article.letter").first).to_be_visible()
    await page.get_by_role("link", name="What-if").click()
    await page.get_by_label("A policy file").select_option("default.toml")
    await page.get_by_role("button", name="Run").click()
    await expect(page.locator("body")).to_contain_text("complaints")

    paths = {u.removeprefix(desk.url).partition("?")[0] for u in seen.urls}
    assert {"/desk/queue/rows", "/desk/search", f"/desk/cases/{case_id}/decide", "/desk/whatif"} <= paths
    personal = [CUSTOMER, "Ana Privada", "ana.private@example.com", "El servicio no funcionó", note, reason, token]
    needles = {form.lower() for p in personal for form in (p, quote(p), quote_plus(p), quote(p, safe=""))}
    leaks = [(u, n) for u in seen.urls for n in needles if n in u.lower()]
    assert leaks == []


async def test_the_csp_watch_sees_a_page_break_its_policy(page: Page, seen: Seen) -> None:
    body = '<!doctype html><style>p { color: red }</style><p style="color: blue">x</p>'

    async def serve(route: Route) -> None:
        await route.fulfill(status=200, content_type="text/html", body=body,
                            headers={"content-security-policy": "style-src 'self'"})  # fmt: skip

    await page.route("http://csp.test/**", serve)
    await page.goto("http://csp.test/")
    for _ in range(50):
        if len(seen.csp_violations) >= 2:  # the <style> and the style attribute
            break
        await page.wait_for_timeout(100)
    assert len(seen.csp_violations) == 2, seen.csp_violations
    assert all("Content Security Policy" in v for v in seen.csp_violations)
    seen.csp_violations.clear()  # seen: this test's page broke its policy on purpose
