"""What every service process opens at start-up and closes at shutdown: a migrated pool,
the producer and its outbox relay, the HTTP probes, the gauges and the inbox pruning.

A service subclasses :class:`ServiceRuntime` and fills in only what differs: ``setup`` (its
application object), ``extend_http`` (extra routes) and ``background`` (extra tasks).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from datetime import timedelta
from importlib.metadata import version
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from services.common import tracing
from services.common.clock import Clock
from services.common.db import create_pool
from services.common.gauges import GaugeUpdater, service_gauges
from services.common.gc_tuning import tune_for_throughput
from services.common.http import HttpOptions, probes_app, serve
from services.common.kafka import make_producer
from services.common.migrate import migrate
from services.common.outbox import prune_inbox_every
from services.common.relay import OutboxRelay
from services.common.settings import CommonSettings


class ServiceRuntime:
    """Resources of one service process, opened in ``start`` and closed in ``close``."""

    gauge_interval_s = 5.0  # how often the lag and outbox gauges are refreshed
    inbox_prune_interval_s = 3600.0  # how often entries past INBOX_RETENTION_HOURS are pruned

    def __init__(
        self,
        settings: CommonSettings,
        clock: Clock,
        *,
        name: str,
        relay: str,
        http_host: str,
        http_port: int,
        namespace: str = "recovery",
    ) -> None:
        """``namespace``: the prefix of the process's own metrics (``recovery``, ``notifier``,
        ``delivery``)."""
        self.settings = settings
        self.namespace = namespace
        self.clock = clock
        self.name = name
        self.relay_name = relay
        self.http_host = http_host
        self.http_port = http_port
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.pool: asyncpg.Pool | None = None
        self.producer: AIOKafkaProducer | None = None
        self.relay: OutboxRelay | None = None
        self.consuming = False
        self.subscribers: list[Any] = []  # the app's Kafka subscribers (set by `attach`)

    def consumers(self) -> list[tuple[str, Any]]:
        """(group id, aiokafka consumer) of each running subscriber, for the lag gauge."""
        return [(s.group_id, s.consumer) for s in self.subscribers if getattr(s, "consumer", None) is not None]

    async def setup(self) -> None:
        """Build the service's application object (the pool is open and migrated)."""

    def extend_http(self, app: FastAPI) -> None:
        """Add routes beside the probes."""

    def http_options(self) -> HttpOptions:
        """The HTTP app's docs and body limit, from the settings (no token guards the docs)."""
        return HttpOptions.of(self.settings)

    def background(self) -> list[Coroutine[Any, Any, None]]:
        """Extra tasks that run until ``stop`` is set."""
        return []

    def require_pool(self) -> asyncpg.Pool:
        assert self.pool is not None, "the runtime has not started"
        return self.pool

    async def start(self) -> None:
        s = self.settings
        self.pool = await create_pool(s)
        async with self.pool.acquire() as conn:
            await migrate(conn)
        await self.setup()
        tune_for_throughput()
        self.producer = make_producer(s)
        await self.producer.start()
        self.relay = OutboxRelay(
            self.pool,
            self.producer,
            self.relay_name,
            batch_size=s.relay_batch_size,
            poll_s=s.relay_poll_s,
            max_request_size=s.kafka_max_request_size,
        )
        build = version("service-recovery")
        service_gauges(self.namespace).build_info.labels(version=build).set(1)
        app = probes_app(self.ready, self.name, build, self.http_options())
        self.extend_http(app)
        tracing.instrument_app(app)
        gauges = GaugeUpdater(self.pool, self.relay_name, self.consumers, self.namespace)
        self.tasks = [
            asyncio.create_task(self.relay.run(self.stop)),
            asyncio.create_task(serve(app, self.http_host, self.http_port, self.stop)),
            asyncio.create_task(gauges.run(self.stop, self.gauge_interval_s)),
            *(asyncio.create_task(c) for c in self.background()),
        ]
        if s.inbox_retention_hours:
            retention = timedelta(hours=s.inbox_retention_hours)
            self.tasks.append(
                asyncio.create_task(prune_inbox_every(self.pool, retention, self.inbox_prune_interval_s, self.stop))
            )

    async def ready(self) -> bool:
        if self.pool is None:
            return False
        await self.pool.fetchval("SELECT 1")
        return self.consuming

    async def close(self) -> None:
        """Stop the tasks, publish what the last batch queued, close the clients."""
        self.stop.set()
        for t in self.tasks:
            with contextlib.suppress(Exception):
                await t
        if self.relay is not None:
            with contextlib.suppress(Exception):
                await self.relay.drain_once()
        if self.producer is not None:
            with contextlib.suppress(Exception):
                await self.producer.stop()
        if self.pool is not None:
            await self.pool.close()
        tracing.shutdown()
