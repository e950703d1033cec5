"""`recoveryctl replay publish` as a process, with the notifier running as a process: the
replayed decisions reach the topic marked ``replay: true`` and no apology is requested
again; a dry run sends nothing. Then `recoveryctl replay rebuild` as a process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.common.clock import ManualClock
from services.common.contract import encode
from services.common.settings import CommonSettings
from services.notifier.application import RELAY as NOTIFIER_RELAY
from tests.e2e.test_notifier import decision_event
from tests.helpers import ROOT, ServiceProcess, TopicReader, outbox_empty, produce, produce_events, read_to_end
from tests.replay_world import T0, make_service, play, round_of, snapshot

REQUESTED = "notification.email.requested.v1"


def _ctl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "recoveryctl"
    return subprocess.run([str(exe), *args], env={**os.environ, **env, "COLUMNS": "200"}, cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


async def _consumed(bootstrap: str, group: str, topic: str, count: int, timeout: float = 60) -> None:
    """Until ``group`` has committed offsets past ``count`` messages of the fresh ``topic``
    (the notifier took every replayed message in and let it go: replays skip the inbox)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()  # loads the cluster's metadata
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        assert partitions, f"no partitions known for {topic}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum([await consumer.committed(tp) or 0 for tp in partitions]) >= count:
                return
            await asyncio.sleep(0.3)
    finally:
        await consumer.stop()
    raise AssertionError("the notifier did not take in every replayed decision")


async def test_replayed_decisions_reach_the_topic_and_the_notifier_sends_no_second_apology(
    settings_env: dict[str, str], common_settings: CommonSettings, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    await play(make_service(pool, common_settings, clock), clock, "e", 14)
    decisions = [r[0] for r in await pool.fetch("SELECT event_id FROM events WHERE event_type = $1",
                                                "recovery.decision.made.v1")]  # fmt: skip
    assert decisions
    boot = settings_env["KAFKA_BOOTSTRAP_SERVERS"]
    notifier = ServiceProcess("notifier-service", {**settings_env, "RELAY_POLL_S": "0.2"},
                              tmp_path / "notifier.log").start()  # fmt: skip
    try:
        async with (
            TopicReader(boot, settings_env["TOPIC_DECISIONS"]) as topic,
            TopicReader(boot, settings_env["TOPIC_NOTIFICATIONS"]) as notes,
        ):
            dry = await asyncio.to_thread(_ctl, settings_env, "replay", "publish", "--from", "1", "--dry-run",
                                          "--type", "recovery.decision.made.v1")  # fmt: skip
            assert dry.returncode == 0, dry.stderr
            rows = [[c.strip() for c in line.split("│")[1:-1]] for line in dry.stdout.splitlines() if "│" in line]
            assert ["recovery.decision.made.v1", settings_env["TOPIC_DECISIONS"], str(len(decisions))] in rows
            # The process has exited: whatever it sent is on the topic now, up to its end.
            assert await read_to_end(boot, settings_env["TOPIC_DECISIONS"]) == []  # a dry run sends nothing

            done = await asyncio.to_thread(_ctl, settings_env, "replay", "publish", "--from", "1")
            assert done.returncode == 0, done.stderr
            replayed = await topic.wait_count(lambda e: True, len(decisions))
            assert all(e["replay"] is True for e in replayed)
            assert {e["id"] for e in replayed if e["type"] == "recovery.decision.made.v1"} == set(decisions)
            await _consumed(boot, settings_env["NOTIFIER_GROUP_ID"], settings_env["TOPIC_DECISIONS"], len(replayed))
            assert await pool.fetchval("SELECT count(*) FROM inbox WHERE consumer = 'notifier-service'") == 0

            # The notifier was listening all along: a decision that is not a replay, sent behind
            # the replayed ones, gets its email. Once its request is out and the notifier's outbox
            # is empty, a request for a replayed decision would be on the topic before it.
            control = decision_event()
            await produce(boot, settings_env["TOPIC_DECISIONS"], [("cust-1", encode(control))])
            await notes.wait_for(lambda e: e["type"] == REQUESTED, 60)
            await outbox_empty(settings_env["DATABASE_MIGRATION_URL"], relay=NOTIFIER_RELAY)
            sent = await read_to_end(boot, settings_env["TOPIC_NOTIFICATIONS"])
            assert [e["causationid"] for e in sent if e["type"] == REQUESTED] == [control.id]
        assert "Traceback" not in notifier.log()
        assert "n@example.com" not in done.stdout + notifier.log()
    finally:
        notifier.stop()


async def _inbox(pool: asyncpg.Pool, want: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while await pool.fetchval("SELECT count(*) FROM inbox WHERE consumer = 'recovery-service'") < want:
        assert time.monotonic() < deadline, "the service did not take in every message"
        await asyncio.sleep(0.3)


async def test_the_running_service_keeps_deciding_through_a_rebuild_and_its_swap(
    settings_env: dict[str, str], pool: asyncpg.Pool, tmp_path: Path
) -> None:
    boot = settings_env["KAFKA_BOOTSTRAP_SERVERS"]
    service = ServiceProcess("recovery-service", settings_env, tmp_path / "recovery.log").start()
    sent = 0

    async def send(tag: str) -> None:
        nonlocal sent
        for batch in round_of(tag, 14, datetime.now(UTC)):
            for kind, topic in (("billing.", "TOPIC_CHARGES"), ("complaint.", "TOPIC_COMPLAINTS")):
                events = [e for e in batch if e["type"].startswith(kind)]
                await produce_events(boot, settings_env[topic], events)
                sent += len(events)

    try:
        await send("k0")
        await _inbox(pool, sent)
        rebuild = asyncio.ensure_future(asyncio.to_thread(_ctl, settings_env, "replay", "rebuild", "--page-size", "10"))
        for k in range(1, 6):  # complaints keep coming while it rebuilds and swaps
            await send(f"k{k}")
            await asyncio.sleep(0.2)
        done = await rebuild
        assert done.returncode == 0, done.stdout + done.stderr
        await _inbox(pool, sent)
        async with pool.acquire() as conn:
            after = await snapshot(conn)
        assert {r[2].split("-")[0] for r in after["rm_cases"]} == {f"k{k}" for k in range(6)}
        # nothing was lost or doubled in the swap: rebuilt again at rest, the tables stay as they are
        again = await asyncio.to_thread(_ctl, settings_env, "replay", "rebuild")
        assert again.returncode == 0, again.stderr
        async with pool.acquire() as conn:
            assert await snapshot(conn) == after
        assert "batch.failed" not in service.log()
        assert "Traceback" not in service.log()
    finally:
        service.stop()


async def test_recoveryctl_rebuilds_the_read_models_as_they_were(
    settings_env: dict[str, str], common_settings: CommonSettings, pool: asyncpg.Pool
) -> None:
    clock = ManualClock(T0)
    await play(make_service(pool, common_settings, clock), clock, "r", 14)
    async with pool.acquire() as conn:
        live = await snapshot(conn)
    done = await asyncio.to_thread(_ctl, settings_env, "replay", "rebuild", "--page-size", "20")
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if "rm_cases" in x)
    assert f"{len(live['rm_cases']):,}" in line
    async with pool.acquire() as conn:
        assert await snapshot(conn) == live
    wrong = await asyncio.to_thread(_ctl, settings_env, "replay", "rebuild", "--projection", "timers")
    assert wrong.returncode == 2
    assert "unknown projection" in wrong.stdout
