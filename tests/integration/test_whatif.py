"""What-if on real PostgreSQL, over a history the real recovery service recorded.

The history (bench/whatif_history.py) is played through ``RecoveryService`` in-process on a
controlled clock: every rule, repeat contacts, agents, breaches, complaints before their
charge, the guardrail, four currencies. The what-if must reproduce it exactly under the
shipped policy, change exactly the cases a changed limit or a candidate's business hours
should, add its money up, and leave the store and the topics as they were.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.whatif_history import START, Timeline, advance, play, timeline
from services.common.clock import ManualClock
from services.common.settings import CommonSettings
from services.recovery.application import RecoveryService
from services.recovery.calendars import staffed
from services.recovery.domain import Policy, Roster, load_policy, load_roster
from services.recovery.domain.calendar import add_business_hours
from services.recovery.domain.roster import DEFAULT_ROSTER_FILE
from services.recovery.whatif import WhatIf, what_if
from services.recovery.whatif.report import CSV_COLUMNS, charts, render_html, write_csv
from tests.helpers import ROOT

DAYS = 75


@pytest.fixture
async def history(pool: asyncpg.Pool, common_settings: CommonSettings) -> Timeline:
    clock = ManualClock(START)
    service = RecoveryService(pool, common_settings, load_policy(), load_roster(), clock)
    story = timeline(140, seed=11, days=DAYS)
    topics = (common_settings.topic("charges"), common_settings.topic("complaints"))
    decided = await play(service, clock, story.sorted(), topics)
    await advance(service, clock, START + timedelta(days=DAYS + 45), timedelta(seconds=3))
    assert decided > 10
    return story


async def _run(pool: asyncpg.Pool, policy: Policy, roster: Roster | None = None, **kwargs: Any) -> WhatIf:
    async with pool.acquire() as conn:
        return await what_if(conn, policy, roster or load_roster(), **kwargs)


async def _store(pool: asyncpg.Pool) -> tuple[Any, ...]:
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM events), (SELECT max(global_position) FROM events),"
        " (SELECT count(*) FROM outbox), (SELECT count(*) FROM inbox),"
        " (SELECT count(*) FROM rm_cases), (SELECT count(*) FROM rm_timers)"
    )
    return tuple(row)


async def _end_offsets(settings: CommonSettings) -> dict[str, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await consumer.start()
    try:
        parts = [TopicPartition(t, p) for t in settings.all_topics() for p in consumer.partitions_for_topic(t) or []]
        ends = await consumer.end_offsets(parts)
        return {f"{tp.topic}:{tp.partition}": off for tp, off in ends.items()}
    finally:
        await consumer.stop()


def _micro(limit: str) -> Policy:
    shipped = load_policy()
    usd = shipped.limits["USD"].model_copy(update={"micro_claim_limit": Decimal(limit)})
    return shipped.model_copy(update={"version": "2", "limits": {**shipped.limits, "USD": usd}})


async def test_the_shipped_policy_reproduces_every_past_decision(
    pool: asyncpg.Pool, history: Timeline, common_settings: CommonSettings
) -> None:
    store, offsets = await _store(pool), await _end_offsets(common_settings)
    run = await _run(pool, load_policy())
    s = run.summary
    assert s.cases == len(history.scenarios)
    assert s.complaints == history.complaints
    assert s.changed == 0, [c.__dict__ for c in s.changes]
    assert s.exact == s.cases  # event for event, voucher codes and times included
    # Reproduced from a sealed history that the what-if does not open: the decisions the live
    # service made with the customers' data are made again without it.
    assert await pool.fetchval("SELECT count(*) FROM events WHERE data ? '_sealed'") > 0
    assert await pool.fetchval("SELECT count(*) FROM customer_keys") > 0
    # The history is as varied as promised.
    labels = {r.before.label for r in run.results}
    expected = {
        "failed-delivery", "micro-claim", "charge-anomaly", "damaged-item", "defective-product", "cancellation",
        "escalated:guardrail", "escalated:over_auto_refund_limit", "escalated:charge_not_found",
        "escalated:currency_without_limits", "escalated:dispute_needs_review", "escalated:needs_person",
    }  # fmt: skip
    assert expected <= labels, expected - labels
    waited = await pool.fetchval(
        "SELECT count(DISTINCT a.stream_id) FROM events a JOIN events l ON l.stream_id = a.stream_id"
        " WHERE a.event_type = 'recovery.case.charge_awaited.v1' AND l.event_type = 'recovery.case.charge_linked.v1'"
        " AND l.version > a.version"
    )
    assert waited > 0  # complaints that came before their charge, decided when it arrived
    repeats = [r for r in run.results if r.before.contacts >= 3]
    assert any(kind == "voucher" for r in repeats for d in r.before.decisions for kind, _, _ in d.remedies)
    rules = {d.rule for r in run.results for d in r.before.decisions}
    assert {"agent-decision", "sla-breach-fallback"} <= rules
    assert s.breaches[0] > 0
    assert s.by_person[0] > 10
    assert s.escalations[0] > s.by_person[0]
    assert {"USD", "EUR", "COP"} <= set(s.money_total)
    assert len(s.months) >= 3
    assert s.money_total == {cur: (b, b) for cur, (b, _) in s.money_total.items()}
    # Read-only: nothing appended, queued, projected or produced.
    assert await _store(pool) == store
    assert await _end_offsets(common_settings) == offsets


async def test_a_window_in_the_middle_reproduces_its_decisions_too(pool: asyncpg.Pool, history: Timeline) -> None:
    since, until = START + timedelta(days=20), START + timedelta(days=50)
    run = await _run(pool, load_policy(), since=since, until=until)
    assert 0 < run.summary.cases < len(history.scenarios)
    assert all(since.isoformat()[:10] <= r.filed_at[:10] <= until.isoformat()[:10] for r in run.results)
    assert run.summary.changed == 0
    assert run.summary.exact == run.summary.cases


async def test_a_raised_micro_claim_limit_changes_exactly_the_disputes_under_it(
    pool: asyncpg.Pool, history: Timeline, tmp_path: Path
) -> None:
    store = await _store(pool)
    run = await _run(pool, _micro("5.00"))
    expected = {case for case, (cur, amount) in history.money.items() if cur == "USD" and amount <= Decimal("5.00")}
    assert len(expected) >= 3
    changed = {r.case_id: r for r in run.results if r.changed}
    assert set(changed) == expected
    assert {r.case_id for r in run.results if not r.exact} == expected  # the rest: same events, version aside
    for r in changed.values():
        assert r.before.label == "escalated:dispute_needs_review"
        assert (r.after.label, r.after.rule, r.after.decided_by) == ("micro-claim", "micro-claim", "policy")
        assert r.after.escalations == 0
        assert r.before.escalations == 1
    s = run.summary
    assert [(c.before, c.after, c.cases) for c in s.changes] == [
        ("escalated:dispute_needs_review", "micro-claim", len(expected))
    ]
    assert s.escalations[0] - s.escalations[1] == len(expected)
    people_before = sum(1 for r in changed.values() if r.before.by_person)
    assert s.person_skipped == people_before
    assert s.by_person[0] - s.by_person[1] == people_before
    assert s.handling_cost_avoided("USD") == Decimal("11.30") * len(expected)
    # Money adds up: totals are the sums of the cases, by type and in all, on both sides.
    for cur, (before, after) in s.money_total.items():
        assert before == sum((r.before.money_in(cur) for r in run.results), Decimal(0))
        assert after == sum((r.after.money_in(cur) for r in run.results), Decimal(0))
        by_type = [pair for (c, _), pair in s.money.items() if c == cur]
        assert (before, after) == (sum(p[0] for p in by_type), sum(p[1] for p in by_type))
    waived = sum((history.money[c][1] for c in expected), Decimal(0))
    assert s.money[("USD", "charge_waiver")][1] - s.money[("USD", "charge_waiver")][0] == waived
    # The CSV lists the changed cases and its amounts make up the difference.
    path = tmp_path / "changed.csv"
    write_csv(run.results, path)
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert {r["case_id"] for r in rows} == expected
    for cur, (before, after) in s.money_total.items():
        mine = [r for r in rows if r["currency"] == cur]
        assert sum(Decimal(r["money_after"]) - Decimal(r["money_before"]) for r in mine) == after - before
    text = path.read_text()
    assert "@example.com" not in text
    assert "Customer" not in text
    assert await _store(pool) == store


async def test_a_lowered_micro_claim_limit_sends_waivers_to_people_with_the_money_granted_live(
    pool: asyncpg.Pool, history: Timeline
) -> None:
    run = await _run(pool, _micro("1.00"))
    changed = [r for r in run.results if r.changed]
    assert changed
    for r in changed:
        assert r.before.label == "micro-claim"
        assert r.after.label in ("escalated:dispute_needs_review", "escalated:guardrail")
        assert r.after.decided_by == "agent:what-if-assumed"
        assert r.after.money == r.before.money
    s = run.summary
    assert s.assumed_person >= len(changed)
    assert s.escalations[1] - s.escalations[0] >= len(changed) - sum(1 for r in changed if r.before.escalations)


async def test_the_html_report_has_a_chart_per_month_and_no_personal_data(
    pool: asyncpg.Pool, history: Timeline
) -> None:
    run = await _run(pool, _micro("5.00"))
    page = render_html(run.summary)
    months = list(run.summary.months)
    svgs = re.findall(r'<svg class="chart" data-chart="([^"]+)".*?</svg>', page, flags=re.S)
    assert svgs == [c.key for c in charts(run.summary)]
    assert svgs[0] == "escalations"
    assert {f"money-{c}" for c in run.summary.money_total} == set(svgs[1:])
    for body in re.findall(r'<svg class="chart".*?</svg>', page, flags=re.S):
        groups = re.findall(r'<g class="month" data-month="([^"]+)">(.*?)</g>', body, flags=re.S)
        assert [m for m, _ in groups] == months
        for _, g in groups:
            assert len(re.findall(r'<rect class="before"', g)) == 1
            assert len(re.findall(r'<rect class="after"', g)) == 1
    assert "<script" not in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page
    assert "@example.com" not in page
    assert "escalated:dispute_needs_review" in page
    assert "micro-claim" in page


async def test_recoveryctl_whatif_writes_the_reports(
    pool: asyncpg.Pool, history: Timeline, database_url: str, tmp_path: Path
) -> None:
    policy = tmp_path / "candidate.toml"
    text = (ROOT / "services/recovery/policy/default.toml").read_text()
    policy.write_text(
        text.replace('version = "1"', 'version = "2"').replace(
            'micro_claim_limit = "2.70"', 'micro_claim_limit = "5.00"', 1
        )
    )
    html, out = tmp_path / "r.html", tmp_path / "r.csv"
    store = await _store(pool)
    env = {**os.environ, "DATABASE_URL": database_url, "COLUMNS": "200"}
    exe = Path(sys.executable).parent / "recoveryctl"
    done = subprocess.run(
        [str(exe), "whatif", "--policy", str(policy), "--html", str(html), "--csv", str(out),
         "--cost-per-contact", "20 USD"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    assert "decided differently" in done.stdout
    assert "default v2" in done.stdout
    assert "20.00 a contact" in done.stdout
    assert html.read_text().startswith("<!DOCTYPE html>")
    assert len(list(csv.DictReader(out.read_text().splitlines()))) >= 3
    assert await _store(pool) == store
    bad = subprocess.run([str(exe), "whatif", "--policy", str(tmp_path / "missing.toml")], env=env,
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert bad.returncode == 2
    assert "cannot be read" in bad.stdout


async def test_a_charge_that_comes_after_the_wait_ran_out_is_linked_in_the_simulation_too(
    pool: asyncpg.Pool, common_settings: CommonSettings
) -> None:
    """The wait for the charge runs out into an escalation; the charge comes later and is
    linked live (the case still listens for it); the breach fallback then decides with it.
    The simulation must hand the charge over just the same to reproduce the case."""
    from tests.integration.test_charge_race import CHARGE, COMPLAINT, NOW

    clock = ManualClock(NOW)
    service = RecoveryService(pool, common_settings, load_policy(), load_roster(), clock)
    await service.handle_records([COMPLAINT])  # filed 5 min ago; the charge is not there yet
    await advance(service, clock, NOW + timedelta(minutes=12), timedelta(seconds=3))  # wait ran out
    clock.now = NOW + timedelta(minutes=30)
    await service.handle_records([CHARGE])
    await advance(service, clock, NOW + timedelta(hours=12), timedelta(seconds=3))  # SLA breach, fallback
    kinds = [
        r[0]
        for r in await pool.fetch(
            "SELECT event_type FROM events WHERE stream_id LIKE 'case-%' ORDER BY global_position"
        )
    ]
    assert kinds.index("recovery.case.charge_linked.v1") < kinds.index("recovery.decision.made.v1"), kinds
    assert "recovery.case.escalated.v1" in kinds

    run = await _run(pool, load_policy())
    assert (run.summary.changed, run.summary.exact, run.summary.cases) == (0, 1, 1)


WEEKDAYS = "".join(f'{day} = [["08:00", "17:00"]]\n' for day in ("mon", "tue", "wed", "thu", "fri"))
# The candidate: every person in one team working on Bogotá's business hours, and normal
# escalations due within one business hour there (warning, breach and fallback on that clock).
DESK_CALENDAR = f"""
[calendars.desk]
zone = "America/Bogota"
holidays = {{ country = "CO" }}
[calendars.desk.hours]
{WEEKDAYS}"""
BUSINESS_CLOCKS = """
[clocks.normal]
warning = "business"
breach = "business"
fallback = "business"
business_hours = "1"
"""


def _calendar_files(tmp_path: Path, clocks: str) -> tuple[Path, Path]:
    """A candidate policy (version 2) with the desk calendar and ``clocks``, and the shipped
    roster with everyone on the desk team."""
    policy, roster = tmp_path / "business.toml", tmp_path / "roster.toml"
    shipped = (ROOT / "services/recovery/policy/default.toml").read_text()
    policy.write_text(shipped.replace('version = "1"', 'version = "2"') + DESK_CALENDAR + clocks)
    roster.write_text(
        DEFAULT_ROSTER_FILE.read_text().replace('languages = ["', 'team = "desk"\nlanguages = ["')
        + '\n[teams.desk]\ncalendar = "desk"\n'
    )
    return policy, roster


def _row(text: str, label: str) -> list[str]:
    """The cells after ``label`` on its line of the terminal report."""
    line = next(line for line in text.splitlines() if label in line)
    return [cell.strip() for cell in re.split(r"[│┃|]", line.split(label, 1)[1]) if cell.strip()]


async def test_recoveryctl_whatif_on_business_hours_reports_breaches_fallbacks_and_money_before_and_after(
    pool: asyncpg.Pool, history: Timeline, database_url: str, tmp_path: Path
) -> None:
    policy_file, roster_file = _calendar_files(tmp_path, BUSINESS_CLOCKS)
    candidate = load_policy(policy_file)
    roster = staffed(load_roster(roster_file), candidate)
    store = await _store(pool)
    run = await _run(pool, candidate, roster)
    s = run.summary
    # People decided within 0.5 to 9 wall-clock hours; one business hour is often less.
    assert s.breaches[1] > s.breaches[0] > 0
    assert s.fallbacks[1] > s.fallbacks[0] > 0
    assert s.money_total["USD"][1] != s.money_total["USD"][0]
    for cur, (before, after) in s.money_total.items():
        assert before == sum((r.before.money_in(cur) for r in run.results), Decimal(0))
        assert after == sum((r.after.money_in(cur) for r in run.results), Decimal(0))
    # Exactly the cases a person decided after their deadline on the calendar breach: among the
    # single complaints escalated once as normal and decided by a person in time on the wall
    # clock, those whose first business hour in Bogotá had run before the person decided.
    cal = roster.calendar("desk")
    assert cal is not None
    normal = {
        r["case_id"]
        for r in await pool.fetch(
            "SELECT data::jsonb ->> 'case_id' AS case_id FROM events WHERE event_type = 'recovery.case.escalated.v1'"
            " GROUP BY 1 HAVING count(*) = 1 AND min(data::jsonb ->> 'priority') = 'normal'"
        )
    }
    decided_by_person = [
        r
        for r in run.results
        if r.case_id in normal
        and r.before.contacts == 1
        and r.before.breaches == 0
        and [d.decided_by.startswith("agent:") for d in r.before.decisions] == [True]
    ]
    assert len(decided_by_person) > 10
    late = {
        r.case_id
        for r in decided_by_person
        if add_business_hours(cal, datetime.fromisoformat(r.filed_at), 1)
        < datetime.fromisoformat(r.before.decided_at[0])
    }
    assert 0 < len(late) < len(decided_by_person)
    assert {r.case_id for r in decided_by_person if r.after.breaches} == late

    env = {**os.environ, "DATABASE_URL": database_url, "RECOVERY_ROSTER_FILE": str(roster_file), "COLUMNS": "200"}
    exe = Path(sys.executable).parent / "recoveryctl"
    done = subprocess.run([str(exe), "whatif", "--policy", str(policy_file)], env=env, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    report = done.stdout
    assert "default v2" in report
    assert _row(report, "SLA breaches")[:2] == [str(s.breaches[0]), str(s.breaches[1])]
    assert _row(report, "breach fallbacks granted")[:2] == [str(s.fallbacks[0]), str(s.fallbacks[1])]
    for cur, (before, after) in s.money_total.items():
        cells = next(_row(line, "total") for line in report.splitlines() if cur in line and "total" in line)
        assert [Decimal(c.replace(",", "")) for c in cells[:2]] == [before, after], cur
    assert f"{s.changed:,} decided differently" in report
    assert await _store(pool) == store


async def test_the_shipped_policy_reproduces_every_case_and_a_calendar_alone_decides_nothing_differently(
    pool: asyncpg.Pool, history: Timeline, database_url: str, tmp_path: Path
) -> None:
    """The shipped policy, through recoveryctl, reproduces every case event for event; the
    same policy with teams on a calendar but the clocks left on the wall records the person's
    deadline on each escalation and decides every case as it was decided."""
    env = {**os.environ, "DATABASE_URL": database_url, "COLUMNS": "200"}
    env.pop("RECOVERY_ROSTER_FILE", None)
    exe = Path(sys.executable).parent / "recoveryctl"
    shipped = ROOT / "services/recovery/policy/default.toml"
    done = subprocess.run([str(exe), "whatif", "--policy", str(shipped)], env=env, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    cases = len(history.scenarios)
    assert f"{cases:,} cases" in done.stdout
    assert "0 decided differently" in done.stdout
    assert f"{cases:,} reproduced event for event" in done.stdout

    policy_file, roster_file = _calendar_files(tmp_path, "")
    candidate = load_policy(policy_file)
    run = await _run(pool, candidate, staffed(load_roster(roster_file), candidate))
    s = run.summary
    assert (s.cases, s.changed) == (cases, 0)
    assert s.breaches[1] == s.breaches[0]
    assert s.fallbacks[1] == s.fallbacks[0]
    assert s.money_total == {cur: (b, b) for cur, (b, _) in s.money_total.items()}
    escalated = sum(1 for r in run.results if r.before.escalations)
    assert s.exact == cases - escalated  # escalations carry the person's deadline now
