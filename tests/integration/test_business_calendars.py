"""Team calendars on real PostgreSQL: the escalations listed by the business time left on each
person's calendar (``recoveryctl cases list --sort time-left`` and ``GET /api/v1/escalations
?sort=time-left``), the bound on what that order reads, and a rebuild after the calendar
file changed that keeps the recorded deadlines.

The world: at ``NOW``, Wednesday 25 November 2026 at 15:00 UTC, the Bogotá team (08:00-17:00
on weekdays, Colombian holidays) is at work, it is 10:00 there; the Madrid team (09:00-14:00 on
weekdays, Thursday the 26th closed) went home at 14:00 and is back on Friday. Every escalation
gets ten business hours on its owner's team calendar, and the normal priority's warning,
breach and fallback follow that clock.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import asyncpg
import httpx
from pydantic import SecretStr

from services.common.clock import ManualClock
from services.common.settings import CommonSettings
from services.recovery import queries
from services.recovery.application import RecoveryService
from services.recovery.calendars import staffed
from services.recovery.domain.policy import DEFAULT_POLICY_FILE, Policy, load_policy
from services.recovery.domain.roster import Roster, load_roster
from services.recovery.identity import Authenticator
from tests.helpers import ROOT, VOUCHERS, cloudevent
from tests.integration.test_charge_race import CHARGE, COMPLAINT, _record
from tests.integration.test_ops_api import GOOD, TOKEN, _app
from tests.replay_world import snapshot

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
HOUR = 3600.0


def weekdays(opens: str, closes: str) -> str:
    """A calendar's ``hours`` table: one span every weekday."""
    return "".join(f'{day} = [["{opens}", "{closes}"]]\n' for day in ("mon", "tue", "wed", "thu", "fri"))


CALENDARS = f"""
[calendars.bogota]
zone = "America/Bogota"
holidays = {{ country = "CO" }}
[calendars.bogota.hours]
{weekdays("08:00", "17:00")}
[calendars.madrid]
zone = "Europe/Madrid"
holidays = {{ country = "ES" }}
closed = [2026-11-26]
[calendars.madrid.hours]
{weekdays("09:00", "14:00")}
[calendars.lima]
zone = "America/Lima"
[calendars.lima.hours]
{weekdays("09:00", "18:00")}
[clocks.normal]
warning = "business"
breach = "business"
fallback = "business"
"""

# Spanish speakers work in Bogotá, English speakers in Madrid (or, on the older roster, Lima).
TEAMED = """
[[owners]]
id = "owner-bogota"
name = "Lucía Fernández"
email = "lucia.fernandez@example.com"
languages = ["es"]
team = "bogota"

[[owners]]
id = "owner-{en}"
name = "Grace Whitfield"
email = "grace.whitfield@example.com"
languages = ["en"]
team = "{en}"

[[supervisors]]
id = "supervisor-bogota"
name = "Carmen Villalobos"
email = "carmen.villalobos@example.com"
languages = ["es"]
team = "bogota"

[[supervisors]]
id = "supervisor-{en}"
name = "James Hartley"
email = "james.hartley@example.com"
languages = ["en"]
team = "{en}"

[teams.bogota]
calendar = "bogota"

[teams.{en}]
calendar = "{en}"
"""


@dataclass(frozen=True)
class Files:
    policy: Path
    roster: Path

    def env(self, database_url: str) -> dict[str, str]:
        return {**os.environ, "DATABASE_URL": database_url, "RECOVERY_POLICY_FILE": str(self.policy),
                "RECOVERY_ROSTER_FILE": str(self.roster)}  # fmt: skip


def write_files(tmp_path: Path, calendars: str = CALENDARS, english: str = "madrid") -> Files:
    """The shipped policy with ``calendars`` added, and a roster whose teams work on them."""
    policy, roster = tmp_path / f"policy-{english}.toml", tmp_path / f"roster-{english}.toml"
    policy.write_text(DEFAULT_POLICY_FILE.read_text() + calendars)
    roster.write_text(TEAMED.replace("{en}", english))
    return Files(policy, roster)


def teamed(files: Files) -> tuple[Policy, Roster]:
    policy = load_policy(files.policy)
    return policy, staffed(load_roster(files.roster), policy)


def service(pool: asyncpg.Pool, policy: Policy, roster: Roster, clock: ManualClock) -> RecoveryService:
    return RecoveryService(pool, CommonSettings(), policy, roster, clock, vouchers=VOUCHERS)


def service_failure(name: str, locale: str, filed: datetime) -> dict[str, Any]:
    """A complaint a person decides (a service failure, 20 USD claimed): a normal escalation."""
    return cloudevent("complaint.filed.v1", {
        "complaint_id": f"cmp-{name}",
        "customer": {"id": f"c-{name}", "name": "Ana", "email": "ana@example.com", "locale": locale},
        "channel": "phone", "category": "service_failure", "claimed_amount": "20.00", "currency": "USD",
        "description": "The service did not work.", "filed_at": filed.isoformat(),
    }, f"c-{name}", time_=filed)  # fmt: skip


async def file(svc: RecoveryService, clock: ManualClock, name: str, locale: str, filed: datetime) -> str:
    """File the complaint at ``filed`` (the service's clock then) and return its case id."""
    clock.now = filed
    await svc.handle_records([_record("customer.complaints", service_failure(name, locale, filed))])
    case_id = await svc.pool.fetchval("SELECT case_id FROM rm_cases WHERE complaint_id = $1", f"cmp-{name}")
    assert case_id is not None
    return str(case_id)


# Each case: its owner's team, when it was filed, and at NOW its business time left and whether
# its calendar is open. Ordered by that time left; the wall clock would order them otherwise.
#   overdue: Bogotá, filed Tue 08:00 there; 9 h on Tuesday, 1 h on Wednesday: due at 09:00, an hour ago.
#   madrid: filed Tue 11:00 there; 3 h Tue, 5 h Wed, Thu closed, 2 h Fri: due Fri 11:00, 2 business
#     hours away (43 on the wall clock).
#   wall: an owner with no team (escalated before the calendars): due_by, 4 h on the wall clock.
#   bogota-late: filed Tue 15:00 there; 2 h Tue, 8 h Wed: due Wed 16:00, 6 h away.
#   bogota-new: filed Wed 08:00 there; 9 h Wed, 1 h Thu: due Thu 09:00, 8 business hours away.
#   lima: its team's calendar is no longer in the roster: the wall clock to its recorded deadline.
EXPECTED = [
    ("overdue", -1 * HOUR, True),
    ("madrid", 2 * HOUR, False),
    ("wall", 4 * HOUR, None),
    ("bogota-late", 6 * HOUR, True),
    ("bogota-new", 8 * HOUR, True),
    ("lima", 24 * HOUR, None),
]


async def open_cases(pool: asyncpg.Pool, files: Files, tmp_path: Path) -> dict[str, str]:
    """The cases of ``EXPECTED`` and a decided one, made by the application; their ids by name."""
    policy, roster = teamed(files)
    clock = ManualClock(NOW)
    live = service(pool, policy, roster, clock)
    ids = {
        "overdue": await file(live, clock, "overdue", "es-CO", datetime(2026, 11, 24, 13, 0, tzinfo=UTC)),
        "madrid": await file(live, clock, "madrid", "en-GB", datetime(2026, 11, 24, 10, 0, tzinfo=UTC)),
        "bogota-late": await file(live, clock, "bogota-late", "es-CO", datetime(2026, 11, 24, 20, 0, tzinfo=UTC)),
        "bogota-new": await file(live, clock, "bogota-new", "es-CO", datetime(2026, 11, 25, 13, 0, tzinfo=UTC)),
    }
    untimed = service(pool, policy, load_roster(), clock)
    ids["wall"] = await file(untimed, clock, "wall", "es-CO", datetime(2026, 11, 25, 9, 0, tzinfo=UTC))
    lima_policy, lima_roster = teamed(write_files(tmp_path, english="lima"))
    ids["lima"] = await file(service(pool, lima_policy, lima_roster, clock), clock, "lima", "en-US",
                             datetime(2026, 11, 25, 14, 0, tzinfo=UTC))  # fmt: skip
    clock.now = datetime(2025, 3, 4, 15, 0, tzinfo=UTC)
    await service(pool, load_policy(), load_roster(), clock).handle_records([CHARGE, COMPLAINT])
    ids["decided"] = str(await pool.fetchval("SELECT case_id FROM rm_cases WHERE status = 'decided'"))
    rows = {r["case_id"]: r for r in await pool.fetch("SELECT case_id, status, priority, calendar_id FROM rm_cases")}
    assert {rows[ids[n]]["status"] for n, _, _ in EXPECTED} == {"escalated"}
    assert {rows[ids[n]]["priority"] for n, _, _ in EXPECTED} == {"normal"}
    assert [rows[ids[n]]["calendar_id"] for n, _, _ in EXPECTED] == ["bogota", "madrid", None, "bogota", "bogota",
                                                                     "lima"]  # fmt: skip
    return ids


def listed(rows: list[dict[str, Any]], ids: dict[str, str]) -> list[tuple[str, float | None, bool | None]]:
    names = {case_id: name for name, case_id in ids.items()}
    return [(names[r["case_id"]], r["time_left_s"], r["calendar_open"]) for r in rows]


async def test_the_ops_api_lists_escalations_by_the_business_time_left_on_each_team_s_calendar(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    files = write_files(tmp_path)
    ids = await open_cases(pool, files, tmp_path)
    policy, roster = teamed(files)
    app = _app(
        pool,
        service(pool, policy, roster, ManualClock(NOW)),
        Authenticator(lambda: pool, service_token=SecretStr(TOKEN)),
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ops") as client:
        by_time = await client.get("/api/v1/escalations", params={"sort": "time-left"}, headers=GOOD)
        assert by_time.status_code == 200, by_time.text
        assert listed(by_time.json(), ids) == EXPECTED
        first = await client.get("/api/v1/escalations", params={"sort": "time-left", "limit": 3}, headers=GOOD)
        assert listed(first.json(), ids) == EXPECTED[:3]
        # The default order is urgency, then the customer's (wall-clock) deadline: not the same.
        urgent = await client.get("/api/v1/escalations", headers=GOOD)
        assert [r["case_id"] for r in urgent.json()] == [ids[n] for n in ("madrid", "overdue", "bogota-late",
                                                                        "wall", "bogota-new", "lima")]  # fmt: skip
        # The person's deadline shown is the one recorded on the team calendar.
        shown = {r["case_id"]: r for r in by_time.json()}
        assert shown[ids["madrid"]]["person_due_by"] == "2026-11-27T10:00:00Z"
        assert shown[ids["madrid"]]["calendar_version"] == "1"
        assert shown[ids["wall"]]["person_due_by"] is None


def ctl_at(now: datetime, env: dict[str, str], *args: str) -> str:
    """``recoveryctl *args`` in a process of its own whose clock reads ``now``."""
    code = ("import datetime, sys\nimport services.recovery.entrypoints.cli as cli\n"
            f"cli.system_clock = lambda: datetime.datetime.fromisoformat({now.isoformat()!r})\n"
            "sys.argv[0] = 'recoveryctl'\ncli.main()\n")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


async def test_recoveryctl_lists_cases_by_the_business_time_left_decided_ones_last(
    pool: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    files = write_files(tmp_path)
    ids = await open_cases(pool, files, tmp_path)
    env = files.env(database_url)
    escalations = json.loads(ctl_at(NOW, env, "cases", "list", "--sort", "time-left", "--json"))
    assert listed(escalations, ids) == EXPECTED
    every = json.loads(ctl_at(NOW, env, "cases", "list", "--all", "--sort", "time-left", "--json"))
    assert listed(every, ids) == [*EXPECTED, ("decided", None, None)]
    # On Friday at 10:00 in Bogotá (16:00 in Madrid) every deadline has passed: the wall clock's
    # by a day or two, Bogotá's by the hours worked since, Madrid's by its Friday morning.
    later = json.loads(ctl_at(NOW + timedelta(days=2), env, "cases", "list", "--sort", "time-left", "--json"))
    assert listed(later, ids) == [("wall", -44 * HOUR, None), ("lima", -24 * HOUR, None),
                                  ("overdue", -19 * HOUR, True), ("bogota-late", -12 * HOUR, True),
                                  ("bogota-new", -10 * HOUR, True), ("madrid", -3 * HOUR, False)]  # fmt: skip
    table = ctl_at(NOW, env, "cases", "list", "--sort", "time-left")
    places = [table.index(ids[name]) for name, _, _ in EXPECTED]
    assert places == sorted(places), table


class Reads:
    """The pool, counting the case rows its queries bring back."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.rows = 0

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self.pool.fetch(query, *args)
        self.rows += sum(1 for r in rows if "case_id" in r)
        return rows


async def many_cases(pool: asyncpg.Pool, n: int) -> None:
    """``n`` rows of rm_cases on the three calendars and the wall clock, in every status, due
    within a month; and a block of Madrid escalations due on its closed Thursday (recorded on
    an older version of the calendar), all with no business time left: ties at the cut."""
    rng = random.Random(21)
    rows = []

    def row(status: str, calendar: str | None, due: datetime) -> tuple[object, ...]:
        case_id = f"case-{rng.getrandbits(64):016x}"
        opened = due - timedelta(hours=10)  # the customer's deadline: the same instant
        person = due if calendar is not None else None
        return (case_id, f"c-{case_id}", f"cmp-{case_id}", "service_failure", status, "owner-bogota", "normal",
                due, due, opened, opened, 2, person, calendar, None if calendar is None else "1")  # fmt: skip

    for _ in range(n):
        status = rng.choices(("escalated", "open", "awaiting_charge", "decided"), weights=(5, 1, 1, 5))[0]
        due = NOW + timedelta(minutes=rng.randint(60, 30 * 24 * 60))
        rows.append(row(status, rng.choice(("bogota", "madrid", "lima", None)), due))
    for minutes in range(1, 300):  # Thursday the 26th, from 09:00 to 14:00 in Madrid
        rows.append(row("escalated", "madrid", datetime(2026, 11, 26, 8, 0, tzinfo=UTC) + timedelta(minutes=minutes)))
    for hours in (1, 5, 30):  # overdue: the least time left of all
        rows.append(row("escalated", "bogota", NOW - timedelta(hours=hours)))
    await pool.executemany(
        "INSERT INTO rm_cases (case_id, customer_id, complaint_id, category, status, owner_id, priority,"
        " sla_deadline, due_by, opened_at, updated_at, version, person_due_by, calendar_id, calendar_version)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        rows,
    )


async def test_the_time_left_order_reads_a_bounded_part_of_the_table_and_equals_a_full_sort(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    _, roster = teamed(write_files(tmp_path))
    await many_cases(pool, 3000)
    table = [
        queries.CaseSummary(**dict(r)).with_time_left(NOW, roster.calendar)
        for r in await pool.fetch(f"SELECT {queries.CASE_COLUMNS} FROM rm_cases")
    ]
    everything = sorted(table, key=lambda r: (r.time_left_s is None, r.time_left_s or 0.0, r.case_id))
    ties = [r for r in everything if r.status == "escalated" and r.time_left_s == 0.0]
    assert len(ties) > 2 * queries.TIME_LEFT_PAGE
    for escalated_only in (True, False):
        expected = [r for r in everything if r.status == "escalated" or not escalated_only]
        for limit in (1, 5, 60, 1000):
            reads = Reads(pool)
            got = await queries.by_urgency(cast(queries.Db, reads), limit, escalated_only=escalated_only,
                                           order="time-left", now=NOW, calendars=roster.calendar)  # fmt: skip
            assert got == expected[:limit], (escalated_only, limit)
            # Each part of the table (a status and a calendar) is read to one past the limit, and
            # Madrid's escalations on through their ties at the cut; the decided only to fill up.
            parts = len({(r.status, r.calendar_id) for r in table if r.status != "decided"})
            bound = parts * min(limit + 1, queries.TIME_LEFT_PAGE) + (0 if escalated_only else limit)
            if limit == 1:  # the cut falls among the overdue: no ties read
                assert reads.rows <= bound, reads.rows
            else:
                assert reads.rows <= bound + len(ties) + queries.TIME_LEFT_PAGE, (escalated_only, limit, reads.rows)
            if limit <= 5:
                assert reads.rows < len(table) // 5, (escalated_only, limit, reads.rows)


# The calendar file changed: Bogotá works 07:00-19:00 now, Madrid opens on Thursday the 26th,
# and the version says so.
CHANGED = (
    CALENDARS.replace(weekdays("08:00", "17:00"), weekdays("07:00", "19:00"))
    .replace("closed = [2026-11-26]\n", "")
    .replace("[calendars.bogota]\n", '[calendars.bogota]\nversion = "2"\n')
    .replace("[calendars.madrid]\n", '[calendars.madrid]\nversion = "2"\n')
)


async def test_a_rebuild_after_the_calendar_file_changed_keeps_every_recorded_deadline(
    pool: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    files = write_files(tmp_path)
    ids = await open_cases(pool, files, tmp_path)
    async with pool.acquire() as conn:
        live = await snapshot(conn)
    deadlines = {
        r["case_id"]: r["person_due_by"] for r in await pool.fetch("SELECT case_id, person_due_by FROM rm_cases")
    }
    assert deadlines[ids["madrid"]] == datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    assert len([t for t in live["rm_timers"] if t[0] in ids.values()]) >= 2 * len(EXPECTED)
    changed = tmp_path / "changed"
    changed.mkdir()
    new = write_files(changed, CHANGED)
    env = new.env(database_url)
    exe = Path(sys.executable).parent / "recoveryctl"
    done = subprocess.run([str(exe), "replay", "rebuild"], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    async with pool.acquire() as conn:
        rebuilt = await snapshot(conn)
    for table, rows in live.items():
        assert rebuilt[table] == rows, table  # the person's deadlines, calendar versions and timers

    # The service on the changed files breaches the Madrid case when its recorded deadline
    # comes, not when the new calendar's would (Thursday at 11:00 in Madrid).
    policy, roster = teamed(new)
    clock = ManualClock(datetime(2026, 11, 26, 10, 30, tzinfo=UTC))
    after = service(pool, policy, roster, clock)
    await after.fire_due_timers()
    breached = "SELECT data::jsonb ->> 'case_id' FROM events WHERE event_type = 'recovery.sla.breached.v1'"
    assert ids["madrid"] not in {r[0] for r in await pool.fetch(breached)}
    # A case escalated now is counted on the changed calendar, this Thursday's hours included.
    fresh = await file(after, clock, "fresh", "en-GB", clock.now)
    row = await pool.fetchrow("SELECT person_due_by, calendar_version FROM rm_cases WHERE case_id = $1", fresh)
    assert (row["person_due_by"], row["calendar_version"]) == (datetime(2026, 11, 30, 10, 30, tzinfo=UTC), "2")
    clock.now = deadlines[ids["madrid"]]
    await after.fire_due_timers()
    assert ids["madrid"] in {r[0] for r in await pool.fetch(breached)}
