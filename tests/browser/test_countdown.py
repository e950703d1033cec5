"""The desk's countdown in Chromium: the queue's rows as the desk renders them, run by its
own desk.js. On the person's calendar it counts business time and holds outside hours;
without a calendar it counts wall time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from jinja2 import Environment, FileSystemLoader, select_autoescape
from playwright.async_api import Page, Route, expect

from services.recovery.desk import reads
from services.recovery.desk.web import HERE, display_ref
from services.recovery.domain.calendar import Calendar, Hours
from services.recovery.queries import CaseSummary

MONDAY_10 = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)
CALENDARS = {
    "office": Calendar(id="office", zone="UTC", hours=Hours(mon=(("08:00", "17:00"),))),  # open at MONDAY_10
    "night": Calendar(id="night", zone="UTC", hours=Hours(mon=(("20:00", "23:00"),))),  # closed at MONDAY_10
}
ORIGIN = "http://desk.test"


def _row(case_id: str, person_due_by: datetime, calendar_id: str | None) -> reads.Row:
    case = CaseSummary(case_id=case_id, customer_id="c-1", complaint_id="cmp-1", category="service_failure",
                       status="escalated", owner_id="owner-ana", priority="high", sla_deadline=person_due_by,
                       due_by=person_due_by, contacts=1, opened_at=MONDAY_10, updated_at=MONDAY_10, version=3,
                       person_due_by=person_due_by, calendar_id=calendar_id)  # fmt: skip
    return reads.Row(case, None, None, Decimal("20.00"), "USD").timed(MONDAY_10, CALENDARS.get)


def _queue_rows() -> str:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape())
    env.globals["ref"] = display_ref
    rows = [
        _row("open-cal", MONDAY_10 + timedelta(hours=2), "office"),  # 2 business hours left, running
        _row("closed-cal", MONDAY_10.replace(hour=22), "night"),  # 20:00-22:00: 2 business hours, held
        _row("wall", datetime.now(UTC) + timedelta(hours=3), None),
    ]
    body = env.get_template("queue_rows.html").render(page_=reads.QueuePage([], rows, None))
    script = (HERE / "static" / "desk.js").read_text(encoding="utf-8")
    return f"<!doctype html><html><body><table>{body}</table><script>{script}</script></body></html>"


async def test_business_time_runs_while_the_calendar_is_open_holds_while_closed_and_wall_time_otherwise(
    page: Page,
) -> None:
    html = _queue_rows()

    async def serve(route: Route) -> None:
        await route.fulfill(status=200, content_type="text/html", body=html)

    await page.route(f"{ORIGIN}/**", serve)
    await page.goto(f"{ORIGIN}/desk/queue")
    running = page.locator("tr[data-case='open-cal'] time.countdown")
    held = page.locator("tr[data-case='closed-cal'] time.countdown")
    wall = page.locator("tr[data-case='wall'] time.countdown")
    await expect(running).to_have_attribute("data-calendar", "open")
    await expect(running).to_have_attribute("data-left-s", "7200")
    await expect(held).to_have_attribute("data-calendar", "closed")
    await expect(held).to_have_attribute("data-left-s", "7200")
    assert await wall.get_attribute("data-calendar") is None
    await expect(held).to_have_text("2h 0m 0s left, paused outside business hours")
    await expect(held).to_have_class("countdown paused")
    await expect(running).to_contain_text("1h 59m")
    await expect(wall).to_contain_text("2h 59m")
    before = [await t.text_content() for t in (running, held, wall)]
    await page.wait_for_timeout(2100)
    after = [await t.text_content() for t in (running, held, wall)]
    assert after[0] != before[0]  # business time runs
    assert "paused" not in (after[0] or "")
    assert after[1] == before[1] == "2h 0m 0s left, paused outside business hours"  # and holds
    assert after[2] != before[2]  # wall time runs
