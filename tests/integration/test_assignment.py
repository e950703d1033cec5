"""Two instances of a service in one group: each gets the same partition numbers of both
input topics, so a customer's charges and complaints (keyed alike) meet in one process."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer

from services.common.consumer import batch_subscriber_options
from services.common.settings import CommonSettings

ASSIGNOR_KEYS = ("partition_assignment_strategy", "session_timeout_ms", "heartbeat_interval_ms")


async def test_two_members_get_the_same_partitions_of_charges_and_complaints(common_settings: CommonSettings) -> None:
    s = common_settings
    options: dict[str, Any] = batch_subscriber_options(s, f"assign-{s.topic_charges}", 10)
    members = [
        AIOKafkaConsumer(
            s.topic_charges,
            s.topic_complaints,
            bootstrap_servers=s.kafka_bootstrap_servers,
            group_id=options["group_id"],
            enable_auto_commit=False,
            **{k: options[k] for k in ASSIGNOR_KEYS},
        )
        for _ in range(2)
    ]
    await asyncio.gather(*(m.start() for m in members))
    try:
        for _ in range(100):  # until the group has settled with both members
            await asyncio.gather(*(m.getmany(timeout_ms=100) for m in members))
            assigned = [m.assignment() for m in members]
            if all(assigned) and sum(len(a) for a in assigned) == 2 * s.topic_partitions:
                break
        by_member = [
            {
                topic: sorted(tp.partition for tp in a if tp.topic == topic)
                for topic in (s.topic_charges, s.topic_complaints)
            }
            for a in assigned
        ]
        for mine in by_member:
            assert mine[s.topic_charges], by_member  # both members have work
            assert mine[s.topic_charges] == mine[s.topic_complaints], by_member
    finally:
        await asyncio.gather(*(m.stop() for m in members))
