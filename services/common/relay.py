"""The outbox relay: publishes queued messages to Kafka, in order, at least once.

One relay per name is active at a time (a PostgreSQL session advisory lock elects it), so a
key's messages leave in outbox order; a second instance waits as a hot standby. The relay is
woken by LISTEN/NOTIFY on ``outbox`` and polls as a fallback. A batch is deleted from the
outbox only after Kafka acknowledged every message in it; a crash in between publishes the
batch again, and consumers drop the repeats by event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import zlib
from typing import Any, Protocol

import asyncpg

from services.common.logging import get_logger

log = get_logger(__name__)


class Producer(Protocol):
    async def send(
        self, topic: str, value: bytes, key: bytes | None = ..., headers: Any = ...
    ) -> asyncio.Future[Any]: ...


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        producer: Producer,
        relay: str,
        *,
        batch_size: int = 1000,
        poll_s: float = 1.0,
    ) -> None:
        self._pool = pool
        self._producer = producer
        self.relay = relay
        self._batch_size = batch_size
        self._poll_s = poll_s
        self._wake = asyncio.Event()
        self.published = 0
        self.is_leader = False

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload == self.relay:
            self._wake.set()

    async def drain_once(self) -> int:
        """Publish up to one batch; return how many messages went out."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, topic, key, value, headers FROM outbox WHERE relay = $1 ORDER BY id LIMIT $2",
                self.relay,
                self._batch_size,
            )
            if not rows:
                return 0
            send = self._producer.send
            futures = []
            for _id, topic, key, value, headers in rows:
                futures.append(await send(topic, value, key=key, headers=_headers(headers)))
            await asyncio.gather(*futures)
            await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", [r[0] for r in rows])
        self.published += len(rows)
        return len(rows)

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop`` is set; a failed batch is retried after a pause."""
        lock_key = zlib.crc32(f"relay:{self.relay}".encode())
        listener: asyncpg.Connection = await self._pool.acquire()
        try:
            await listener.add_listener("outbox", self._on_notify)
            while not stop.is_set():
                if not self.is_leader:
                    self.is_leader = bool(await listener.fetchval("SELECT pg_try_advisory_lock($1)", lock_key))
                    if not self.is_leader:
                        await _wait(stop, self._poll_s)
                        continue
                    log.info("relay.leader", relay=self.relay)
                try:
                    sent = await self.drain_once()
                except (OSError, asyncpg.PostgresError, Exception) as exc:
                    log.warning("relay.batch_failed", relay=self.relay, error=type(exc).__name__)
                    await _wait(stop, self._poll_s)
                    continue
                if sent >= self._batch_size:
                    continue
                self._wake.clear()
                waiter = asyncio.ensure_future(self._wake.wait())
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait({waiter, stopper}, timeout=self._poll_s,
                                   return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
                waiter.cancel()
                stopper.cancel()
        finally:
            with contextlib.suppress(Exception):
                await listener.remove_listener("outbox", self._on_notify)
                if self.is_leader:
                    await listener.execute("SELECT pg_advisory_unlock($1)", lock_key)
            await self._pool.release(listener)
            self.is_leader = False


@functools.lru_cache(maxsize=64)
def _headers(text: str) -> list[tuple[str, bytes]]:
    # Nearly every row carries the same headers (the content type): parse them once. The
    # list is shared between messages; the producer only reads it.
    return [(k, v.encode()) for k, v in json.loads(text)]


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
