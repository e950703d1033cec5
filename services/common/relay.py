"""The outbox relay: publishes queued messages to Kafka, in order, at least once.

One relay per name is active at a time (a PostgreSQL session advisory lock elects it), so a
key's messages leave in outbox order; a second instance waits as a hot standby. The relay is
woken by LISTEN/NOTIFY on ``outbox`` and polls as a fallback. A batch is deleted from the
outbox only after Kafka acknowledged every message in it; a crash in between publishes the
batch again, and consumers drop the repeats by event id.

A drain builds one Kafka record batch per partition itself (``create_batch`` /
``send_batch``) instead of calling ``send`` per message: that saves the producer's
per-message work (a future per record, metadata and size checks, a lingering batch), which
matters because the relay shares its process's CPU with the service. Each keyed message
goes to the partition ``send(topic, value, key=key)`` would pick with the producer's
default partitioner (murmur2 of the key), so a customer's messages stay on one partition;
the relay therefore needs a producer built with that default partitioner, as
``make_producer`` builds it. Messages without a key go through ``send`` as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import zlib
from collections.abc import Sequence
from typing import Any, Protocol

import asyncpg
from aiokafka.partitioner import DefaultPartitioner

from services.common.logging import get_logger
from services.common.periodic import pause

log = get_logger(__name__)

_DEFAULT_PARTITIONER = DefaultPartitioner()
# Keys whose partition a relay remembers per topic before it starts over (a few MB).
_KNOWN_KEYS = 50_000


class Producer(Protocol):
    async def send(
        self, topic: str, value: bytes, key: bytes | None = ..., headers: Any = ...
    ) -> asyncio.Future[Any]: ...


class RecordBatch(Protocol):
    """aiokafka's ``BatchBuilder``: records for one partition, sent as one."""

    def append(
        self, *, timestamp: float | None, key: bytes | None, value: bytes | None, headers: Sequence[Any] = ...
    ) -> object | None: ...

    def close(self) -> None: ...


class BatchProducer(Producer, Protocol):
    """What the relay needs of ``AIOKafkaProducer``."""

    async def partitions_for(self, topic: str) -> set[int]: ...

    def create_batch(self) -> RecordBatch: ...

    async def send_batch(self, batch: RecordBatch, topic: str, *, partition: int) -> asyncio.Future[Any]: ...


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        producer: BatchProducer,
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
        # Per topic: its partitions as the producer listed them, and the partition of each
        # key seen while that list held (murmur2 in pure Python costs microseconds a key).
        self._key_partitions: dict[str, tuple[list[int], dict[bytes, int]]] = {}

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload == self.relay:
            self._wake.set()

    async def drain_once(self, conn: asyncpg.Connection | None = None) -> int:
        """Publish up to one batch; return how many messages went out. On ``conn`` (the
        running relay's own connection) or, without one, on a connection from the pool."""
        if conn is None:
            async with self._pool.acquire() as pooled:
                return await self._drain(pooled)
        return await self._drain(conn)

    async def _drain(self, conn: asyncpg.Connection) -> int:
        # Two statements, no transaction: only the leader drains, so nothing else deletes
        # these rows meanwhile. A failure or a crash anywhere before the delete leaves them
        # to be published again (consumers drop repeats by id), as a rollback would have.
        rows = await conn.fetch(
            "SELECT id, topic, key, value, headers FROM outbox WHERE relay = $1 ORDER BY id LIMIT $2",
            self.relay,
            self._batch_size,
        )
        if not rows:
            return 0
        await asyncio.gather(*await self._publish(rows))
        await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", [r[0] for r in rows])
        self.published += len(rows)
        return len(rows)

    async def _publish(self, rows: Sequence[asyncpg.Record]) -> list[asyncio.Future[Any]]:
        """Hand ``rows`` to the producer in id order, one record batch per partition
        (more when a partition's fills up); return the futures of Kafka's acknowledgements."""
        producer = self._producer
        acks: list[asyncio.Future[Any]] = []
        batches: dict[tuple[str, int], RecordBatch] = {}
        known: dict[str, tuple[list[int], dict[bytes, int]]] = {}  # topic -> _key_partitions[topic]
        for _id, topic, key, value, headers_text in rows:
            headers = _headers(headers_text)
            if key is None:
                # No key, no order to keep: send picks a partition that has a leader.
                acks.append(await producer.send(topic, value, key=None, headers=headers))
                continue
            if (of_topic := known.get(topic)) is None:
                of_topic = known[topic] = await self._partitions_of_keys(topic)
            all_partitions, by_key = of_topic
            if (partition := by_key.get(key)) is None:
                # What send does with a key: the default partitioner over all the topic's
                # partitions, listed as the producer lists them.
                partition = by_key[key] = _DEFAULT_PARTITIONER(key, all_partitions, all_partitions)
            batch = batches.get((topic, partition))
            if batch is None:
                batch = batches[topic, partition] = producer.create_batch()
            if batch.append(timestamp=None, key=key, value=value, headers=headers) is None:
                # Full (the producer's max_batch_size; append closed it): send it and go on
                # in a new one, which takes any first record whatever its size.
                acks.append(await producer.send_batch(batch, topic, partition=partition))
                batch = batches[topic, partition] = producer.create_batch()
                batch.append(timestamp=None, key=key, value=value, headers=headers)
        for (topic, partition), batch in batches.items():
            batch.close()  # nothing else joins it, and it leaves without lingering
            acks.append(await producer.send_batch(batch, topic, partition=partition))
        return acks

    async def _partitions_of_keys(self, topic: str) -> tuple[list[int], dict[bytes, int]]:
        """``topic``'s partitions and the partitions of the keys seen so far; the keys are
        forgotten when the partitions changed (or too many keys piled up)."""
        partitions = list(await self._producer.partitions_for(topic))
        current = self._key_partitions.get(topic)
        if current is None or current[0] != partitions or len(current[1]) > _KNOWN_KEYS:
            current = self._key_partitions[topic] = (partitions, {})
        return current

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop`` is set; a failed batch is retried after a pause, and a lost
        connection is replaced (the election starts over on the new one)."""
        while not stop.is_set():
            try:
                await self._run_on_own_connection(stop)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("relay.connection_lost", relay=self.relay, error=type(exc).__name__)
                await pause(stop, self._poll_s)

    async def _run_on_own_connection(self, stop: asyncio.Event) -> None:
        lock_key = zlib.crc32(f"relay:{self.relay}".encode())
        listener: asyncpg.Connection = await self._pool.acquire()
        try:
            await listener.add_listener("outbox", self._on_notify)
            # The relay drains on this connection too (no pool round trips per batch). Its
            # deletes need not wait for the disk: one lost in a crash republishes its rows,
            # which the consumers drop by id, as after any crash before the delete.
            await listener.execute("SET synchronous_commit = off")
            while not stop.is_set():
                if not self.is_leader:
                    self.is_leader = bool(await listener.fetchval("SELECT pg_try_advisory_lock($1)", lock_key))
                    if not self.is_leader:
                        await pause(stop, self._poll_s)
                        continue
                    log.info("relay.leader", relay=self.relay)
                # Cleared before the drain reads the outbox, not after: a commit notified
                # while a batch is in flight must wake the relay again at once (cleared
                # afterwards, its messages waited for the next commit or the poll).
                self._wake.clear()
                try:
                    sent = await self.drain_once(listener)
                except Exception as exc:  # logged; the batch is retried after a pause
                    if listener.is_closed():
                        raise  # leadership went with the session: elect again on a new one
                    log.warning("relay.batch_failed", relay=self.relay, error=type(exc).__name__)
                    await pause(stop, self._poll_s)
                    continue
                if sent >= self._batch_size or self._wake.is_set():
                    continue
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
            with contextlib.suppress(Exception):
                await self._pool.release(listener)
            self.is_leader = False


@functools.lru_cache(maxsize=64)
def _headers(text: str) -> list[tuple[str, bytes]]:
    # Nearly every row carries the same headers (the content type): parse them once. The
    # list is shared between messages; the producer only reads it.
    return [(k, v.encode()) for k, v in json.loads(text)]
