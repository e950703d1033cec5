"""Dead letters on the real broker and PostgreSQL: bounded on the topic, listed, shown and
sent again with `recoveryctl dlq`, and the topics created with their configs."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from services.common.clock import ManualClock
from services.common.kafka import make_producer
from services.common.records import InboundRecord
from services.common.relay import OutboxRelay
from services.common.settings import CommonSettings
from services.recovery.application import RELAY, RecoveryService
from services.recovery.domain.policy import load_policy
from services.recovery.domain.roster import load_roster
from tests.helpers import cloudevent, read_records, recoveryctl

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
BIG = 900_000


def complaint(customer: str, complaint_id: str, email: str, now: datetime) -> dict[str, Any]:
    return cloudevent("complaint.filed.v1", {
        "complaint_id": complaint_id,
        "customer": {"id": customer, "name": "Ana", "email": email, "locale": "en-US"},
        "channel": "web", "category": "service_failure", "claimed_amount": "20.00", "currency": "USD",
        "description": "The service did not work.", "filed_at": (now - timedelta(minutes=5)).isoformat(),
    }, customer, time_=now)  # fmt: skip


@dataclass
class Letters:
    """Three dead letters published to the dead-letter topic, by the recovery service's
    own code: a message of 900 KB, a complaint with an invalid email, and one not JSON."""

    env: dict[str, str]
    service: RecoveryService
    big: bytes
    bad_complaint: dict[str, Any]
    not_json: bytes


async def _relay(pool: asyncpg.Pool, settings: CommonSettings) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        relay = OutboxRelay(pool, producer, RELAY, max_request_size=settings.kafka_max_request_size)
        while await relay.drain_once():
            pass
        assert relay.parked == 0
    finally:
        await producer.stop()


@pytest.fixture
async def letters(pool: asyncpg.Pool, common_settings: CommonSettings, settings_env: dict[str, str]) -> Letters:
    clock = ManualClock(datetime.now(UTC) - timedelta(minutes=30))
    service = RecoveryService(pool, common_settings, load_policy(), load_roster(), clock)
    complaints = common_settings.topic("complaints")
    big = b'{"specversion": "1.0", "data": "' + b"x" * BIG  # cut short: not JSON
    bad = complaint("cust-7", "cmp-7", "not-an-email", clock())
    not_json = b"{not json"
    for offset, (key, value) in enumerate([(b"cust-big", big), (b"cust-7", json.dumps(bad).encode()),
                                           (b"cust-8", not_json)]):  # fmt: skip
        result = await service.handle_records([InboundRecord(complaints, 0, offset, key, value)])
        assert result.dead_letters == 1
        clock.advance(timedelta(minutes=10))
    await _relay(pool, common_settings)
    return Letters({**os.environ, **settings_env}, service, big, bad, not_json)


async def test_a_dead_letter_of_a_900_kb_message_is_published_with_its_length_and_sha256(
    letters: Letters, common_settings: CommonSettings
) -> None:
    records = await read_records(common_settings.kafka_consumer_options(), common_settings.topic_dlq, 3)
    (record,) = [r for r in records if r.key == b"cust-big"]
    original = json.loads(record.value)["data"]["original"]
    assert original["value_bytes"] == len(letters.big)
    assert original["value_sha256"] == hashlib.sha256(letters.big).hexdigest()
    assert original["truncated"] is True
    assert letters.big.startswith(original["value"].encode())
    assert len(original["value"]) == common_settings.dead_letter_max_value_bytes
    assert len(record.value) < BIG  # the whole message is not copied


async def test_dlq_list_shows_every_dead_letter_with_its_whole_id_and_filters(
    letters: Letters, common_settings: CommonSettings, pool: asyncpg.Pool
) -> None:
    listed = json.loads(recoveryctl(letters.env, "dlq", "list", "--json"))
    assert [d["key"] for d in listed] == ["cust-8", "cust-7", "cust-big"]  # newest first
    ids = {d["key"]: d["id"] for d in listed}
    assert all(len(i) == 36 for i in ids.values())  # UUIDs, whole
    assert {d["code"] for d in listed} == {"not_json", "invalid_data"}
    big = next(d for d in listed if d["key"] == "cust-big")
    assert (big["value_bytes"], big["truncated"]) == (len(letters.big), True)

    def keys(*args: str) -> list[str]:
        return [d["key"] for d in json.loads(recoveryctl(letters.env, "dlq", "list", "--json", *args))]

    assert keys("--code", "invalid_data") == ["cust-7"]
    assert keys("--topic", common_settings.topic("complaints"), "--limit", "2") == ["cust-8", "cust-7"]
    assert keys("--topic", "elsewhere") == []
    assert keys("--since", "5m") == []  # received 30, 20 and 10 minutes ago
    assert keys("--since", "25m") == ["cust-8", "cust-7"]
    since = (datetime.now(UTC) - timedelta(hours=1)).replace(tzinfo=None).isoformat(timespec="seconds")
    assert len(keys("--since", since)) == 3
    # The table shows the ids whole even in a narrow terminal.
    table = recoveryctl({**letters.env, "COLUMNS": "80"}, "dlq", "list")
    assert all(i in table for i in ids.values())
    # However often the topic is read, each dead letter is listed once.
    assert await pool.fetchval("SELECT count(*) FROM dead_letters") == 3


async def test_dlq_show_gives_the_reason_the_original_and_whether_it_was_cut(letters: Letters) -> None:
    ids = {d["key"]: d["id"] for d in json.loads(recoveryctl(letters.env, "dlq", "list", "--json"))}
    shown = recoveryctl(letters.env, "dlq", "show", ids["cust-7"])
    assert "invalid_data" in shown
    assert "customer.email" in shown
    assert "kept         whole" in shown
    assert json.dumps(letters.bad_complaint) in shown  # the original, as text
    big = recoveryctl(letters.env, "dlq", "show", ids["cust-big"])
    assert f"length       {len(letters.big)} bytes" in big
    assert hashlib.sha256(letters.big).hexdigest() in big
    assert "truncated" in big
    assert "no dead letter nope" in recoveryctl(letters.env, "dlq", "show", "nope", code=2)


async def test_a_fixed_complaint_redriven_lands_on_its_topic_with_its_key_and_is_decided(
    letters: Letters, common_settings: CommonSettings, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    ids = {d["key"]: d["id"] for d in json.loads(recoveryctl(letters.env, "dlq", "list", "--json"))}
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(letters.bad_complaint))
    out = recoveryctl(letters.env, "dlq", "redrive", ids["cust-7"], "--file", str(wrong), code=2)
    assert out.strip().startswith("--file: data.customer.email:")
    assert "Traceback" not in out
    truncated = recoveryctl(letters.env, "dlq", "redrive", ids["cust-big"], "--as-is", code=2)
    assert "--file" in truncated

    customer = {"id": "cust-7", "name": "Ana", "email": "ana@example.com"}
    fixed = dict(letters.bad_complaint, data={**letters.bad_complaint["data"], "customer": customer})
    path = tmp_path / "fixed.json"
    path.write_text(json.dumps(fixed, indent=2))
    assert "sent file" in recoveryctl(letters.env, "dlq", "redrive", ids["cust-7"], "--file", str(path))
    again = recoveryctl(letters.env, "dlq", "redrive", ids["cust-7"], "--file", str(path), code=2)
    assert "--force" in again
    recoveryctl(letters.env, "dlq", "redrive", ids["cust-8"], "--as-is")

    complaints = common_settings.topic("complaints")
    records = await read_records(common_settings.kafka_consumer_options(), complaints, 2)
    assert sorted((r.key, r.value) for r in records) == [
        (b"cust-7", path.read_bytes().strip()),
        (b"cust-8", letters.not_json),
    ]
    # The recovery service decides the fixed complaint.
    redriven = next(r for r in records if r.key == b"cust-7")
    result = await letters.service.handle_records([InboundRecord(complaints, r.partition, r.offset, r.key, r.value)
                                                    for r in [redriven]])  # fmt: skip
    assert (result.accepted, result.dead_letters) == (1, 0)
    assert await pool.fetchval("SELECT count(*) FROM rm_cases WHERE complaint_id = 'cmp-7'") == 1
    shown = json.loads(recoveryctl(letters.env, "dlq", "show", ids["cust-7"], "--json"))
    assert [(r["how"], r["topic"], r["offset"]) for r in shown["redrives"]] == [("file", complaints, redriven.offset)]
    recoveryctl(letters.env, "dlq", "redrive", ids["cust-7"], "--file", str(path), "--force")
    shown = json.loads(recoveryctl(letters.env, "dlq", "show", ids["cust-7"], "--json"))
    assert len(shown["redrives"]) == 2


async def test_a_dead_letter_topic_made_anew_is_read_from_its_beginning(
    letters: Letters, common_settings: CommonSettings, pool: asyncpg.Pool
) -> None:
    # Read further than the topic now holds: as after the topic was deleted and made again.
    await pool.executemany(
        "INSERT INTO dead_letter_positions (dlq_topic, partition, next_offset) VALUES ($1, $2, 10000)",
        [(common_settings.topic_dlq, p) for p in range(common_settings.topic_partitions)],
    )
    listed = json.loads(recoveryctl(letters.env, "dlq", "list", "--json"))
    assert sorted(d["key"] for d in listed) == ["cust-7", "cust-8", "cust-big"]


async def test_topics_are_created_with_their_configs(common_settings: CommonSettings) -> None:
    admin = AIOKafkaAdminClient(**common_settings.kafka_client_options())
    await admin.start()
    try:
        names = common_settings.all_topics()
        answers = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in names])
    finally:
        await admin.close()
    configs = {res[3]: {e[0]: e[1] for e in res[4]} for answer in answers for res in answer.resources}
    for name in names:
        assert configs[name]["max.message.bytes"] == str(common_settings.kafka_max_request_size)
    assert configs[common_settings.topic_dlq]["retention.ms"] == str(30 * 24 * 3_600_000)
