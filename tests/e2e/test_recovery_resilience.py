"""Order, time, people and crashes: the recovery service as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from tests.e2e.test_recovery_service import itunes_charge, itunes_complaint
from tests.helpers import ServiceProcess, TopicReader, cloudevent, outbox_empty, produce_events, read_to_end

DECIDED = "recovery.decision.made.v1"


async def test_a_complaint_before_its_charge_waits_for_it_then_is_decided(
    settings_env: dict[str, str], pool: asyncpg.Pool, tmp_path: Path
) -> None:
    boot = settings_env["KAFKA_BOOTSTRAP_SERVERS"]
    svc = ServiceProcess("recovery-service", settings_env, tmp_path / "svc.log").start()
    try:
        async with TopicReader(boot, settings_env["TOPIC_DECISIONS"]) as decisions:
            await produce_events(
                boot,
                settings_env["TOPIC_COMPLAINTS"],
                [itunes_complaint("c-early", "ch-late", "cmp-early")],
            )
            await decisions.wait_for(lambda e: e["type"] == "recovery.case.opened.v1", 60)
            # Opened in the transaction that decided what to do: wait for the charge.
            assert await pool.fetchval("SELECT status FROM rm_cases") == "awaiting_charge"
            assert not [e for e in decisions.events if e["type"] == DECIDED]
            await produce_events(boot, settings_env["TOPIC_CHARGES"], [itunes_charge("c-early", "ch-late")])
            made = await decisions.wait_for(lambda e: e["type"] == DECIDED, 30)
            assert made[0]["data"]["policy"]["rule"] == "failed-delivery"
    finally:
        svc.stop()


async def test_an_sla_breach_fires_on_time_and_the_customer_favourable_fallback_follows(
    settings_env: dict[str, str], pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """The service's clock is a file the test moves (RECOVERY_TEST_CLOCK_FILE): the breach
    fires at the deadline to the microsecond, never before, however slow the machine."""
    boot = settings_env["KAFKA_BOOTSTRAP_SERVERS"]
    clock = tmp_path / "clock"
    now = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    clock.write_text(now.isoformat())
    filed = now - timedelta(hours=10) + timedelta(minutes=1)  # the 10 h SLA ends a minute from now
    complaint = cloudevent("complaint.filed.v1", {
        "complaint_id": "cmp-slow",
        "customer": {"id": "c-slow", "name": "Ana", "email": "ana@example.com", "locale": "es-CO"},
        "channel": "phone", "category": "service_failure", "claimed_amount": "20.00", "currency": "USD",
        "description": "El servicio no funcionó.", "filed_at": filed.isoformat(),
    }, "c-slow", time_=filed)  # fmt: skip
    env = {**settings_env, "RECOVERY_TEST_CLOCK_FILE": str(clock), "RECOVERY_TIMER_POLL_S": "0.1"}
    svc = ServiceProcess("recovery-service", env, tmp_path / "svc.log").start()
    try:
        async with TopicReader(boot, settings_env["TOPIC_DECISIONS"]) as decisions:
            await produce_events(boot, settings_env["TOPIC_COMPLAINTS"], [complaint])
            await decisions.wait_for(lambda e: e["type"] == "recovery.case.escalated.v1", 60)
            warned = await decisions.wait_for(lambda e: e["type"] == "recovery.sla.warning.v1", 30)
            assert datetime.fromisoformat(warned[0]["data"]["at"]) == now  # due since the start
            deadline = filed + timedelta(hours=10)
            clock.write_text(deadline.isoformat())
            breach = await decisions.wait_for(lambda e: e["type"] == "recovery.sla.breached.v1", 30)
            assert datetime.fromisoformat(breach[0]["data"]["sla_deadline"]) == deadline
            # Fired at the first look of the timers at the deadline: the clock stood there.
            assert datetime.fromisoformat(breach[0]["data"]["at"]) == deadline
            made = await decisions.wait_for(lambda e: e["type"] == DECIDED, 30)
            data = made[0]["data"]
            assert data["within_sla"] is False
            assert data["policy"]["rule"] == "sla-breach-fallback"
            assert [(r["type"], r["amount"]) for r in data["remedies"]] == [("refund", "20.00")]
            # Fired once: the case has no timer left to fire, and everything the service
            # queued is on the topic.
            case_id = made[0]["data"]["case_id"]
            assert await pool.fetchval("SELECT count(*) FROM rm_timers WHERE case_id = $1", case_id) == 0
            await outbox_empty(settings_env["DATABASE_URL"])
            events = await read_to_end(boot, settings_env["TOPIC_DECISIONS"])
            assert len([e for e in events if e["type"] == "recovery.sla.breached.v1"]) == 1
    finally:
        svc.stop()


async def test_an_agent_decides_an_escalated_case_with_recoveryctl(
    settings_env: dict[str, str], tmp_path: Path
) -> None:
    boot = settings_env["KAFKA_BOOTSTRAP_SERVERS"]
    complaint = cloudevent("complaint.filed.v1", {
        "complaint_id": "cmp-person",
        "customer": {"id": "c-person", "name": "Sam", "email": "sam@example.com", "locale": "en-US"},
        "channel": "chat", "category": "other", "description": "Something else went wrong.",
        "filed_at": datetime.now(UTC).isoformat(),
    }, "c-person")  # fmt: skip
    svc = ServiceProcess("recovery-service", settings_env, tmp_path / "svc.log").start()
    try:
        async with TopicReader(boot, settings_env["TOPIC_DECISIONS"]) as decisions:
            await produce_events(boot, settings_env["TOPIC_COMPLAINTS"], [complaint])
            esc = await decisions.wait_for(lambda e: e["type"] == "recovery.case.escalated.v1", 60)
            case_id = esc[0]["data"]["case_id"]
            env = {**os.environ, **settings_env}
            ctl = Path(sys.executable).parent / "recoveryctl"
            listed = subprocess.run([ctl, "cases", "list"], env=env, capture_output=True, text=True, timeout=60)
            assert case_id in listed.stdout, listed.stdout + listed.stderr  # whole: `cases show` takes it
            nobody = subprocess.run([ctl, "cases", "decide", case_id, "--as", "maria", "--refund", "15.00 USD"],
                                    env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
            assert nobody.returncode == 1  # a decision needs a person who exists
            assert "no enabled person maria" in nobody.stdout
            added = subprocess.run([ctl, "agents", "add", "maria", "--role", "agent", "--name", "María"],
                                   env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
            assert added.returncode == 0, added.stdout + added.stderr
            done = subprocess.run([ctl, "cases", "decide", case_id, "--agent", "maria", "--refund", "15.00 USD"],
                                  env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
            assert done.returncode == 0, done.stdout + done.stderr
            made = await decisions.wait_for(lambda e: e["type"] == DECIDED, 30)
            assert made[0]["data"]["decided_by"] == "agent:maria"
            assert made[0]["data"]["remedies"][0]["amount"] == "15.00"
            again = subprocess.run([ctl, "cases", "decide", case_id, "--agent", "maria", "--refund", "15.00 USD"],
                                   env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
            assert again.returncode == 1  # a decided case is not decided twice
            shown = subprocess.run([ctl, "cases", "show", case_id], env=env, capture_output=True, text=True, timeout=60)
            assert "agent:maria" in shown.stdout
    finally:
        svc.stop()


async def test_a_kill_9_in_the_middle_of_a_backlog_loses_nothing_and_decides_each_complaint_once(
    settings_env: dict[str, str], tmp_path: Path
) -> None:
    boot = settings_env["KAFKA_BOOTSTRAP_SERVERS"]
    n = 3000
    await produce_events(boot, settings_env["TOPIC_CHARGES"],
                         [itunes_charge(f"k{i}", f"kch{i}") for i in range(n)])  # fmt: skip
    await produce_events(boot, settings_env["TOPIC_COMPLAINTS"],
                         [itunes_complaint(f"k{i}", f"kch{i}", f"kcmp{i}") for i in range(n)])  # fmt: skip
    env = {**settings_env, "RECOVERY_BATCH_MAX": "100"}
    first = ServiceProcess("recovery-service", env, tmp_path / "first.log").start()
    async with TopicReader(boot, settings_env["TOPIC_DECISIONS"]) as decisions:
        try:
            await decisions.wait_count(lambda e: e["type"] == DECIDED, 200, 90)
        finally:
            first.kill()
        seen_at_kill = len([e for e in decisions.events if e["type"] == DECIDED])
        assert seen_at_kill < n, "the backlog finished before the kill; the test proves nothing"
        second = ServiceProcess("recovery-service", env, tmp_path / "second.log").start()
        try:
            await decisions.wait_count(lambda e: e["type"] == DECIDED and True, n, 180)
        finally:
            second.stop()
    # Stopped: the topic read to its end holds all it will.
    everything = await read_to_end(boot, settings_env["TOPIC_DECISIONS"])
    await assert_each_decided_once(everything, settings_env["DATABASE_URL"], n, "kcmp")


async def assert_each_decided_once(events: list[dict[str, object]], database_url: str, n: int, prefix: str) -> None:
    made = [e for e in events if e["type"] == DECIDED]
    ids_per_complaint: dict[str, set[str]] = {}
    for e in made:
        data = e["data"]
        assert isinstance(data, dict)
        ids_per_complaint.setdefault(data["complaint_id"], set()).add(str(e["id"]))
    assert set(ids_per_complaint) == {f"{prefix}{i}" for i in range(n)}
    assert all(len(ids) == 1 for ids in ids_per_complaint.values())  # redelivered copies share the id
    conn = await asyncpg.connect(database_url)
    try:
        per_case = await conn.fetch(
            "SELECT stream_id, count(*) FROM events WHERE event_type = $1 GROUP BY stream_id", DECIDED
        )
    finally:
        await conn.close()
    assert len(per_case) == n
    assert Counter(r[1] for r in per_case) == {1: n}


async def test_two_instances_share_the_partitions_across_rebalances_and_decide_each_complaint_once(
    settings_env: dict[str, str], tmp_path: Path
) -> None:
    boot = settings_env["KAFKA_BOOTSTRAP_SERVERS"]
    n = 3000
    await produce_events(boot, settings_env["TOPIC_CHARGES"], [itunes_charge(f"s{i}", f"sch{i}") for i in range(n)])
    await produce_events(
        boot, settings_env["TOPIC_COMPLAINTS"], [itunes_complaint(f"s{i}", f"sch{i}", f"scmp{i}") for i in range(n)]
    )
    env = {**settings_env, "RECOVERY_BATCH_MAX": "100"}
    first = ServiceProcess("recovery-service", env, tmp_path / "first.log").start()
    second = ServiceProcess("recovery-service", env, tmp_path / "second.log")
    async with TopicReader(boot, settings_env["TOPIC_DECISIONS"]) as decisions:
        try:
            await decisions.wait_count(lambda e: e["type"] == DECIDED, 200, 90)
            second.start()  # joins the group: a rebalance in the middle of the backlog
            await decisions.wait_count(lambda e: e["type"] == DECIDED, 1200, 120)
            first.stop()  # leaves the group: another rebalance
            assert len([e for e in decisions.events if e["type"] == DECIDED]) < n, "backlog done too early"
            await decisions.wait_count(lambda e: e["type"] == DECIDED, n, 180)
        finally:
            first.stop()
            second.stop()
    assert "Traceback" not in first.log() + second.log()
    everything = await read_to_end(boot, settings_env["TOPIC_DECISIONS"])  # stopped: all there is
    await assert_each_decided_once(everything, settings_env["DATABASE_URL"], n, "scmp")
