"""A poison message in the middle of a backlog, the services as real processes: the whole
backlog is decided and the poison message is on the dead-letter topic with its reason.

A poison message is one the service's real batch method is made to raise for (the
processes load tests/e2e/poison/sitecustomize.py); the broker and PostgreSQL are real."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from services.common.contract import encode
from tests.e2e.test_notifier_resilience import decision_event
from tests.helpers import ROOT, ServiceProcess, TopicReader, produce, produce_events
from tests.integration.test_batch_failure import _pair
from tests.poison import ENV, POISON_TEXT

DEAD = "recovery.deadletter.v1"
DECIDED = "recovery.decision.made.v1"
REQUESTED = "notification.email.requested.v1"


def poisoned_env(settings_env: dict[str, str], marks: list[str]) -> dict[str, str]:
    path = os.pathsep.join([str(ROOT / "tests" / "e2e" / "poison"), str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {**settings_env, "PYTHONPATH": path, ENV: ",".join(marks), "RETRY_BASE_S": "0.05", "RELAY_POLL_S": "0.2"}


async def _dead_letters(boot: str, topic: str, count: int) -> list[dict[str, Any]]:
    async with TopicReader(boot, topic) as dlq:
        return await dlq.wait_count(lambda e: e["type"] == DEAD, count, 120)


def _assert_reasons(letters: list[dict[str, Any]], marks: list[str], topics: list[str]) -> None:
    assert len(letters) == len(marks), "each poison message dead-lettered once"
    for letter, mark, topic in zip(sorted(letters, key=_original_mark(marks)), marks, topics, strict=True):
        data = letter["data"]
        assert data["error"]["code"] == "unprocessable"
        assert data["error"]["message"].startswith(f"Poison: {POISON_TEXT}")
        assert data["original"]["topic"] == topic
        assert mark in data["original"]["value"]


def _original_mark(marks: list[str]) -> Any:
    return lambda e: next(i for i, m in enumerate(marks) if m in e["data"]["original"]["value"])


async def test_a_poison_charge_and_complaint_in_a_backlog_are_dead_lettered_and_the_rest_decided(
    settings_env: dict[str, str], tmp_path: Path
) -> None:
    boot = settings_env["KAFKA_BOOTSTRAP_SERVERS"]
    pairs = [_pair(i, "e2e") for i in range(200)]
    marks = [pairs[80][0]["id"], pairs[120][1]["id"]]  # a charge, and another customer's complaint
    await produce_events(boot, settings_env["TOPIC_CHARGES"], [p[0] for p in pairs])
    await produce_events(boot, settings_env["TOPIC_COMPLAINTS"], [p[1] for p in pairs])
    svc = ServiceProcess("recovery-service", poisoned_env(settings_env, marks), tmp_path / "svc.log").start()
    good = {p[1]["data"]["complaint_id"] for i, p in enumerate(pairs) if i not in (80, 120)}
    try:
        async with TopicReader(boot, settings_env["TOPIC_DECISIONS"]) as decisions:
            try:
                await decisions.wait_count(lambda e: e["type"] == DECIDED, len(good), 180)
            except AssertionError:
                print(svc.log()[-5000:])
                raise
            decided = [e["data"]["complaint_id"] for e in decisions.events if e["type"] == DECIDED]
        assert set(decided) == good
        letters = await _dead_letters(boot, settings_env["TOPIC_DLQ"], 2)
    finally:
        svc.stop()
    _assert_reasons(letters, marks, [settings_env["TOPIC_CHARGES"], settings_env["TOPIC_COMPLAINTS"]])
    log = svc.log()
    assert "message.isolated" in log
    assert "n@example.com" not in log, "no personal data in the logs"


async def test_a_poison_decision_in_a_backlog_is_dead_lettered_and_every_other_email_requested(
    settings_env: dict[str, str], tmp_path: Path
) -> None:
    boot = settings_env["KAFKA_BOOTSTRAP_SERVERS"]
    events = [decision_event(i) for i in range(150)]
    marks = [events[75].id]
    await produce(boot, settings_env["TOPIC_DECISIONS"], [(e.subject, encode(e)) for e in events])
    svc = ServiceProcess("notifier-service", poisoned_env(settings_env, marks), tmp_path / "notifier.log").start()
    try:
        async with TopicReader(boot, settings_env["TOPIC_NOTIFICATIONS"]) as notes:
            try:
                await notes.wait_count(lambda e: e["type"] == REQUESTED, len(events) - 1, 180)
            except AssertionError:
                print(svc.log()[-5000:])
                raise
            causes = [e["causationid"] for e in notes.events if e["type"] == REQUESTED]
        assert sorted(causes) == sorted(e.id for e in events if e.id not in marks)
        letters = await _dead_letters(boot, settings_env["TOPIC_DLQ"], 1)
    finally:
        svc.stop()
    _assert_reasons(letters, marks, [settings_env["TOPIC_DECISIONS"]])
    assert "@example.com" not in svc.log(), "no personal data in the logs"
