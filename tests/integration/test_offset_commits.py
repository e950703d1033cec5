"""The recovery service commits a handled batch's Kafka offsets without holding up the next
batch, and a clean stop leaves nothing to redeliver (the FastStream app in-process, real
broker and PostgreSQL)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

import services.recovery.entrypoints.kafka as recovery_kafka
from services.recovery.settings import RecoverySettings
from tests.helpers import produce_events
from tests.integration.test_batch_failure import _count, _pair
from tests.integration.test_relay import wait_for


async def _committed(settings: RecoverySettings, topic: str) -> int:
    """The sum over the topic's partitions of the group's committed offsets."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers,
                                group_id=settings.recovery_group_id, enable_auto_commit=False)  # fmt: skip
    await consumer.start()
    try:
        offsets = [await consumer.committed(TopicPartition(topic, p)) for p in range(settings.topic_partitions)]
    finally:
        await consumer.stop()
    return sum(o or 0 for o in offsets)


def _settings(settings_env: dict[str, str]) -> RecoverySettings:
    env = {k.lower(): v for k, v in settings_env.items()}
    return RecoverySettings(**env, http_host="127.0.0.1", http_port=0)  # type: ignore[arg-type]


async def test_the_next_batch_is_handled_while_a_commit_waits_and_a_clean_stop_commits_everything(
    settings_env: dict[str, str], pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(settings_env)
    boot = settings.kafka_bootstrap_servers
    first, second = [_pair(i, "a") for i in range(5)], [_pair(i, "b") for i in range(5)]
    await produce_events(boot, settings.topic_charges, [p[0] for p in first + second])

    # Hold the first commit of a batch with complaints until the second wave is decided, and
    # release it in the same step as the stop: the stop finds it, and the second wave's
    # commit behind it, in the air.
    release, holding = asyncio.Event(), asyncio.Event()
    held: list[int] = []  # one entry per commit waiting for the release
    real_commit = AIOKafkaConsumer.commit

    async def commit(self: AIOKafkaConsumer, offsets: Any = None) -> None:
        if offsets and any(tp.topic == settings.topic_complaints for tp in offsets) and not release.is_set():
            holding.set()
            held.append(1)
            await release.wait()
            held.pop()
        await real_commit(self, offsets)

    monkeypatch.setattr(AIOKafkaConsumer, "commit", commit)
    app = recovery_kafka.build_app(settings)
    running = asyncio.create_task(app.run())
    try:
        await wait_for(lambda: _count(pool, "SELECT count(*) FROM rm_charges", 10), 60, "the charges")
        await produce_events(boot, settings.topic_complaints, [p[1] for p in first])
        await asyncio.wait_for(holding.wait(), 60)  # the first wave's commit is in the air
        await produce_events(boot, settings.topic_complaints, [p[1] for p in second])
        # Decided while that commit still waits: the batch did not wait for it.
        await wait_for(lambda: _count(pool, "SELECT count(*) FROM rm_cases WHERE status = 'decided'", 10), 60,
                       "the second wave to be decided while the first commit waits")  # fmt: skip
        assert held, "the first wave's commit still waits"
        assert await _committed(settings, settings.topic_complaints) == 0
    finally:
        # No await between: the held commit and the second wave's are pending at the stop.
        release.set()
        app.exit()
        await asyncio.wait_for(running, 30)
    # After a clean stop the group has committed every record of both topics.
    assert await _committed(settings, settings.topic_charges) == 10
    assert await _committed(settings, settings.topic_complaints) == 10
