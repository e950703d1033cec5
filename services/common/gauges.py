"""Gauges every service process keeps current on ``/metrics``: the consumer lag of its
partitions, the backlog of its outbox relay and the rows that relay parked, each under the
process's namespace (``recovery_``, ``notifier_``, ``delivery_``: :func:`service_gauges`),
and the build it runs (``<namespace>_build_info``).

The names without a namespace (``kafka_consumer_lag``, ``outbox_backlog``,
``outbox_oldest_age_seconds``, ``outbox_parked``) are still set beside them, for this
version only: dashboards and alerts move to the namespaced names (see CHANGELOG.md).

Lag is the partition's high watermark minus the group's committed offset (the records not
yet handled and committed), for the partitions assigned to this instance; summed over the
instances it is the group's lag. The high watermark comes from the consumer's own fetches
(``highwater``), not from ``end_offsets``: one request fewer, and right on brokers whose
ListOffsets answers are not (the bundled one). A partition not fetched yet is left out.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka.errors import IllegalStateError
from prometheus_client import Gauge

from services.common.logging import get_logger
from services.common.periodic import every

log = get_logger(__name__)

CONSUMER_LAG = Gauge(
    "kafka_consumer_lag",
    "Records on the partition not yet handled and committed by the group (this instance's partitions)",
    ["group", "topic", "partition"],
)
OUTBOX_BACKLOG = Gauge("outbox_backlog", "Messages in the outbox not yet published to Kafka", ["relay"])
OUTBOX_OLDEST = Gauge(
    "outbox_oldest_age_seconds", "Age of the oldest message waiting in the outbox (0 when empty)", ["relay"]
)

OUTBOX_PARKED = Gauge(
    "outbox_parked",
    "Outbox rows the broker refused for good, set aside until `recoveryctl outbox retry`",
    ["relay"],
)


@dataclass(frozen=True)
class ServiceGauges:
    """One process's gauges, under its namespace."""

    lag: Gauge
    backlog: Gauge
    oldest: Gauge
    parked: Gauge
    build_info: Gauge


@functools.cache
def service_gauges(namespace: str) -> ServiceGauges:
    """The gauges of the processes named ``namespace`` (registered once per namespace)."""
    return ServiceGauges(
        lag=Gauge(f"{namespace}_kafka_consumer_lag_records",
                  "Records on the partition not yet handled and committed by the group (this instance's partitions)",
                  ["group", "topic", "partition"]),
        backlog=Gauge(f"{namespace}_outbox_backlog_messages", "Messages in the outbox not yet published to Kafka",
                      ["relay"]),
        oldest=Gauge(f"{namespace}_outbox_oldest_age_seconds",
                     "Age of the oldest message waiting in the outbox (0 when empty)", ["relay"]),
        parked=Gauge(f"{namespace}_outbox_parked_messages",
                     "Outbox rows the broker refused for good, set aside until `recoveryctl outbox retry`", ["relay"]),
        build_info=Gauge(f"{namespace}_build_info", "The build the process runs (always 1)", ["version"]),
    )  # fmt: skip


NAMESPACES = ("recovery", "notifier", "delivery")

Consumers = Callable[[], Iterable[tuple[str, Any]]]  # (group id, AIOKafkaConsumer) of the running subscribers


async def partition_lag(consumer: Any) -> dict[tuple[str, int], int]:
    """(topic, partition) -> lag for the partitions assigned to ``consumer`` and fetched."""
    lags: dict[tuple[str, int], int] = {}
    for tp in list(consumer.assignment()):
        highwater = consumer.highwater(tp)
        if highwater is None:
            continue
        committed = await consumer.committed(tp)
        if committed is None:  # nothing committed yet: count from where the group reads
            try:
                committed = await consumer.position(tp)
            except IllegalStateError:  # revoked meanwhile (a rebalance)
                continue
        lags[(tp.topic, tp.partition)] = max(0, highwater - committed)
    return lags


class GaugeUpdater:
    """Sets the gauges of one process from its subscribers' consumers and its outbox."""

    def __init__(self, pool: asyncpg.Pool, relay: str, consumers: Consumers, namespace: str = "recovery") -> None:
        self._pool = pool
        self._relay = relay
        self._consumers = consumers
        self._labels: set[tuple[str, str, str]] = set()
        self._gauges = service_gauges(namespace)

    async def update(self) -> None:
        seen: set[tuple[str, str, str]] = set()
        for group, consumer in self._consumers():
            for (topic, partition), lag in (await partition_lag(consumer)).items():
                labels = (group, topic, str(partition))
                CONSUMER_LAG.labels(*labels).set(lag)
                self._gauges.lag.labels(*labels).set(lag)
                seen.add(labels)
        for gone in self._labels - seen:  # partitions another instance has now
            for gauge in (CONSUMER_LAG, self._gauges.lag):
                with contextlib.suppress(KeyError):
                    gauge.remove(*gone)
        self._labels = seen
        row = await self._pool.fetchrow(
            "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8,"
            " (SELECT count(*) FROM outbox_parked WHERE relay = $1)"
            " FROM outbox WHERE relay = $1",
            self._relay,
        )
        g = self._gauges
        for gauges, value in (((OUTBOX_BACKLOG, g.backlog), row[0]), ((OUTBOX_OLDEST, g.oldest), row[1]),
                              ((OUTBOX_PARKED, g.parked), row[2])):  # fmt: skip
            for gauge in gauges:
                gauge.labels(self._relay).set(value)

    async def run(self, stop: asyncio.Event, interval_s: float) -> None:
        # A round that fails leaves a scrape the last values; the next round retries.
        await every(stop, interval_s, self.update, failed="gauges.failed")
