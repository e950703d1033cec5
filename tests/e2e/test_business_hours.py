"""Business hours on the real servers: a case filed after hours, with a calendar built around the
test's own time, warns and breaches when the calendar's next working span has run; under the
wall clock the same case breaches at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from services.recovery.domain.policy import DEFAULT_POLICY_FILE
from services.recovery.domain.roster import DEFAULT_ROSTER_FILE
from tests.helpers import ServiceProcess, TopicReader, cloudevent, produce_events

ESCALATED = "recovery.case.escalated.v1"
WARNING = "recovery.sla.warning.v1"
BREACHED = "recovery.sla.breached.v1"
DECIDED = "recovery.decision.made.v1"
# How long after the test's "now" the person's deadline falls: long enough for the complaint to
# be decided first, short enough not to wait.
AHEAD = timedelta(seconds=12)


def _files(tmp_path: Path, now: datetime, *, business: bool) -> dict[str, str]:
    """A policy and a roster whose one team works on a calendar open only from the start of
    this minute for two minutes (UTC), the person's deadline ``AHEAD`` of ``now``."""
    start = now.replace(second=0, microsecond=0)
    end = start + timedelta(minutes=2)
    hours = Decimal((now + AHEAD - start) / timedelta(microseconds=1)) / Decimal(3_600_000_000)
    weekday = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[start.weekday()]
    policy = DEFAULT_POLICY_FILE.read_text()
    for shipped, short in (
        ("sla_hours = 10", "sla_hours = 1"),
        ("sla_warning_ratio = 0.8", "sla_warning_ratio = 0.95"),
    ):
        assert shipped in policy
        policy = policy.replace(shipped, short)
    policy += f"""
[calendars.desk]
zone = "UTC"
hours = {{ {weekday} = [["{start:%H:%M}", "{end:%H:%M}"]] }}
"""
    if business:
        policy += f"""
[clocks.normal]
warning = "business"
breach = "business"
fallback = "business"
business_hours = "{hours:.12f}"
"""
    roster = DEFAULT_ROSTER_FILE.read_text().replace('languages = ["', 'team = "desk"\nlanguages = ["')
    roster += '\n[teams.desk]\ncalendar = "desk"\n'
    (tmp_path / "policy.toml").write_text(policy)
    (tmp_path / "roster.toml").write_text(roster)
    return {
        "RECOVERY_POLICY_FILE": str(tmp_path / "policy.toml"),
        "RECOVERY_ROSTER_FILE": str(tmp_path / "roster.toml"),
    }


def _complaint(cid: str, filed: datetime) -> dict[str, object]:
    return cloudevent("complaint.filed.v1", {
        "complaint_id": cid,
        "customer": {"id": f"c-{cid}", "name": "Ana", "email": "ana@example.com", "locale": "es-CO"},
        "channel": "phone", "category": "service_failure", "claimed_amount": "20.00", "currency": "USD",
        "description": "El servicio no funcionó.", "filed_at": filed.isoformat(),
    }, f"c-{cid}")  # fmt: skip


Data = dict[str, Any]


async def _run(settings_env: dict[str, str], tmp_path: Path, *, business: bool) -> tuple[Data, Data, Data, Data]:
    """Start the service on the calendar, file a complaint two hours before now (after hours,
    its wall-clock deadline an hour gone) and return its escalation, warning, breach and decision."""
    boot = settings_env["KAFKA_BOOTSTRAP_SERVERS"]
    warm = datetime.now(UTC)
    # The span opens within the half minute the service takes to start and decide a first case.
    env = {**settings_env, **_files(tmp_path, warm + timedelta(seconds=30), business=business)}
    svc = ServiceProcess("recovery-service", env, tmp_path / "svc.log").start()
    try:
        async with TopicReader(boot, settings_env["TOPIC_DECISIONS"]) as decisions:
            # A first complaint with hours to go, so that the service has joined its group
            # before the clock of the one under test runs.
            await produce_events(boot, settings_env["TOPIC_COMPLAINTS"], [_complaint("cmp-warm", warm)])
            await decisions.wait_for(lambda e: e["type"] == ESCALATED, 60)
            decisions.events.clear()
            filed = datetime.now(UTC) - timedelta(hours=2)
            await produce_events(boot, settings_env["TOPIC_COMPLAINTS"], [_complaint("cmp-late", filed)])
            escalated = (await decisions.wait_for(lambda e: e["type"] == ESCALATED, 60))[0]["data"]
            warning = (await decisions.wait_for(lambda e: e["type"] == WARNING, 60))[0]["data"]
            breach = (await decisions.wait_for(lambda e: e["type"] == BREACHED, 60))[0]["data"]
            made = (await decisions.wait_for(lambda e: e["type"] == DECIDED, 60))[0]["data"]
            return escalated, warning, breach, made
    finally:
        svc.stop()


async def test_a_case_filed_after_hours_breaches_when_the_calendar_s_working_span_has_run(
    settings_env: dict[str, str], tmp_path: Path
) -> None:
    escalated, warning, breach, made = await _run(settings_env, tmp_path, business=True)
    person_due = datetime.fromisoformat(escalated["person_due_by"])
    person_warning = datetime.fromisoformat(escalated["person_warning_at"])
    wall_due = datetime.fromisoformat(escalated["due_by"])
    assert escalated["calendar"] == {"id": "desk", "version": "1", "zone": "UTC"}
    assert person_due - wall_due > timedelta(minutes=59)  # the span opened long after the filing
    warned, fired = datetime.fromisoformat(warning["at"]), datetime.fromisoformat(breach["at"])
    assert timedelta(0) <= warned - person_warning < timedelta(seconds=10)
    assert timedelta(0) <= fired - person_due < timedelta(seconds=10)
    assert (made["policy"]["rule"], made["within_sla"]) == ("sla-breach-fallback", False)


async def test_the_same_case_under_the_wall_clock_breaches_on_the_wall_clock(
    settings_env: dict[str, str], tmp_path: Path
) -> None:
    escalated, _, breach, made = await _run(settings_env, tmp_path, business=False)
    person_due = datetime.fromisoformat(escalated["person_due_by"])
    fired = datetime.fromisoformat(breach["at"])
    # Due an hour ago on the wall clock: breached at once, before the person's deadline.
    assert breach["sla_deadline"] == escalated["due_by"]
    assert fired < person_due
    assert made["policy"]["rule"] == "sla-breach-fallback"
