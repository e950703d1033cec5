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
``make_producer`` builds it. A message without a key has no order to keep: it goes
through ``send`` on its own, which picks a partition that has a leader.

No row blocks the rows behind it. A row the broker refuses for good (too large, an invalid
or forbidden topic: :data:`REFUSED_FOR_GOOD`) is parked: moved to ``outbox_parked`` with
its error, and the drain goes on. A record batch is refused as a whole, so the rows of a
refused batch are sent again one by one to find the one at fault; a drain sends at most one
record batch per partition (it ends where a partition's batch is full), so retried one by
one they still leave in their order. Any other error (a lost connection, a leader change, a
timeout, a topic not created yet) fails the drain, which is retried after a pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import time
import zlib
from collections.abc import Sequence
from typing import Any, Protocol

import asyncpg
from aiokafka import errors
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from opentelemetry.trace import SpanKind

from services.common import tracing
from services.common.logging import get_logger
from services.common.outbox import park
from services.common.periodic import pause

log = get_logger(__name__)

_DEFAULT_PARTITIONER = DefaultPartitioner()
# Keys whose partition a relay remembers per topic before it starts over (a few MB).
_KNOWN_KEYS = 50_000

# What the producer or the broker answers for a record that can never be accepted as it
# is: sent again, it would fail again. A batch too large (RecordListTooLargeError) is
# tried record by record like any refused batch; only a record refused alone is parked.
REFUSED_FOR_GOOD: tuple[type[Exception], ...] = (
    errors.MessageSizeTooLargeError,
    errors.RecordListTooLargeError,
    errors.RecordTooLargeError,
    errors.InvalidTopicError,
    errors.TopicAuthorizationFailedError,
    errors.InvalidTimestampError,
    errors.UnsupportedForMessageFormatError,
    errors.PolicyViolationError,
)
_Partitions = tuple[list[int], dict[bytes, int]]


def refused_for_good(exc: BaseException) -> bool:
    """Whether ``exc`` refuses a record for good (park it) rather than for now (retry)."""
    return isinstance(exc, REFUSED_FOR_GOOD)


@dataclasses.dataclass(slots=True)
class _Flight:
    """One send in a drain: Kafka's acknowledgement and the outbox rows it carries."""

    ack: asyncio.Future[Any]
    rows: list[asyncpg.Record]


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
        max_request_size: int | None = None,
    ) -> None:
        """``max_request_size``: the producer's; a larger row is parked before it is sent, as
        the producer's ``send`` would refuse it (None leaves the size to the broker)."""
        self._pool = pool
        self._producer = producer
        self.relay = relay
        self._batch_size = batch_size
        self._poll_s = poll_s
        self._max_request_size = max_request_size
        self._wake = asyncio.Event()
        self._more = False  # the last drain ended early: rows wait behind it
        self.published = 0
        self.parked = 0
        self.is_leader = False
        # Per topic: its partitions as the producer listed them, and the partition of each
        # key seen while that list held (murmur2 in pure Python costs microseconds a key).
        self._key_partitions: dict[str, tuple[list[int], dict[bytes, int]]] = {}

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload == self.relay:
            self._wake.set()

    async def drain_once(self, conn: asyncpg.Connection | None = None) -> int:
        """Publish up to one batch; return how many rows left the outbox (published or
        parked). On ``conn`` (the running relay's own connection) or, without one, on a
        connection from the pool."""
        if conn is None:
            async with self._pool.acquire() as pooled:
                return await self._drain(pooled)
        return await self._drain(conn)

    async def _drain(self, conn: asyncpg.Connection) -> int:
        # Two statements, no transaction: only the leader drains, so nothing else deletes
        # these rows meanwhile. A failure or a crash anywhere before the delete leaves them
        # to be published again (consumers drop repeats by id), as a rollback would have.
        rows = await conn.fetch(
            "SELECT id, topic, key, value, headers, traceparent, tracestate FROM outbox WHERE relay = $1"
            " ORDER BY id LIMIT $2",
            self.relay,
            self._batch_size,
        )
        self._more = False
        if not rows:
            return 0
        started = time.time_ns()
        flights, refused, taken = await self._publish(rows)
        outcomes = await asyncio.gather(*(f.ack for f in flights), return_exceptions=True)
        if tracing.enabled():
            _publish_spans(rows, flights, outcomes, started)
        failed = [f for f, outcome in zip(flights, outcomes, strict=True) if isinstance(outcome, BaseException)]
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not refused_for_good(outcome):
                raise outcome  # for now: the whole drain is tried again after a pause
        for flight in failed:
            await self._one_by_one(flight.rows, refused)
        done = rows[:taken]
        if refused:  # before the delete, which would take them too
            await self._park(conn, done, refused)
        await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", [r[0] for r in done])
        self.published += taken - len(refused)
        self._more = taken < len(rows)
        return taken

    async def _publish(self, rows: Sequence[asyncpg.Record]) -> tuple[list[_Flight], dict[int, Exception], int]:
        """Hand ``rows`` to the producer in id order, one record batch per partition; return
        the sends in flight, the rows refused before any was sent (id -> error), and how many
        rows were taken: the drain ends before a row that finds its partition's batch full."""
        producer = self._producer
        flights: list[_Flight] = []
        refused: dict[int, Exception] = {}
        batches: dict[tuple[str, int], tuple[RecordBatch, list[asyncpg.Record]]] = {}
        known: dict[str, _Partitions | Exception] = {}  # topic -> _key_partitions[topic]
        for taken, (row_id, topic, key, value, headers_text, *_trace) in enumerate(rows):
            headers = _headers(headers_text)
            try:
                self._check_size(key, value, headers)
                if key is None:
                    # No key, no order to keep: send picks a partition that has a leader.
                    flights.append(_Flight(await producer.send(topic, value, key=None, headers=headers), [rows[taken]]))
                    continue
                of_topic = known.get(topic)
                if of_topic is None or isinstance(of_topic, Exception):
                    of_topic = await self._topic(topic, known)
            except REFUSED_FOR_GOOD as exc:
                refused[row_id] = exc
                continue
            partition = _partition(of_topic, key)
            if (entry := batches.get((topic, partition))) is None:
                entry = batches[topic, partition] = (producer.create_batch(), [])
            # The first record goes into an empty batch whatever its size; a full batch
            # (the producer's max_batch_size; append closed it) ends the drain here.
            if entry[0].append(timestamp=None, key=key, value=value, headers=headers) is None:
                break
            entry[1].append(rows[taken])
        else:
            taken = len(rows)
        for (topic, partition), (batch, batch_rows) in batches.items():
            batch.close()  # nothing else joins it, and it leaves without lingering
            flights.append(_Flight(await producer.send_batch(batch, topic, partition=partition), batch_rows))
        return flights, refused, taken

    async def _one_by_one(self, rows: Sequence[asyncpg.Record], refused: dict[int, Exception]) -> None:
        """Send ``rows`` (a refused batch's) again one at a time, in order, and add those
        refused alone to ``refused``; an error that is not for good fails the drain."""
        known: dict[str, _Partitions | Exception] = {}
        for row_id, topic, key, value, headers_text, *_trace in rows:
            headers = _headers(headers_text)
            try:
                if key is None:
                    await (await self._producer.send(topic, value, key=None, headers=headers))
                    continue
                partition = _partition(await self._topic(topic, known), key)
                batch = self._producer.create_batch()
                batch.append(timestamp=None, key=key, value=value, headers=headers)
                batch.close()
                await (await self._producer.send_batch(batch, topic, partition=partition))
            except REFUSED_FOR_GOOD as exc:
                refused[row_id] = exc

    def _check_size(self, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        """Refuse a record over ``max_request_size`` as the producer's ``send`` does."""
        limit = self._max_request_size
        if limit is None or len(value) + len(key or b"") + 1024 < limit:  # far below: no estimate
            return
        size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)
        if size > limit:
            raise errors.MessageSizeTooLargeError(f"the record is {size} bytes, over max_request_size {limit}")

    async def _topic(self, topic: str, known: dict[str, _Partitions | Exception]) -> _Partitions:
        """``topic``'s partitions and known keys, looked up once per drain (``known``); raises
        the error that refused the topic for good (e.g. a topic this client may not write to)."""
        if (of_topic := known.get(topic)) is None:
            try:
                of_topic = known[topic] = await self._partitions_of_keys(topic)
            except REFUSED_FOR_GOOD as exc:
                of_topic = known[topic] = exc
        if isinstance(of_topic, Exception):
            raise of_topic
        return of_topic

    async def _park(
        self, conn: asyncpg.Connection, rows: Sequence[asyncpg.Record], refused: dict[int, Exception]
    ) -> None:
        await park(conn, {row_id: f"{type(exc).__name__}: {exc}" for row_id, exc in refused.items()})
        self.parked += len(refused)
        for row_id, topic, _key, value, *_rest in rows:
            if (exc := refused.get(row_id)) is not None:
                # No key, no value: they may carry personal data.
                log.error("relay.parked", relay=self.relay, outbox_id=row_id, topic=topic, bytes=len(value),
                          error=type(exc).__name__)  # fmt: skip

    async def _partitions_of_keys(self, topic: str) -> _Partitions:
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
                if sent >= self._batch_size or self._more or self._wake.is_set():
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


def _publish_spans(
    rows: Sequence[asyncpg.Record], flights: Sequence[_Flight], outcomes: Sequence[Any], started: int
) -> None:
    """A ``publish`` span for each sent row that carries a trace context: a child of the
    span that queued it, from the drain's start to Kafka's answer."""
    failed = {id(f.rows): o for f, o in zip(flights, outcomes, strict=True) if isinstance(o, BaseException)}
    tracer = tracing.tracer()
    for flight in flights:
        error = failed.get(id(flight.rows))
        for row in flight.rows:
            ctx = tracing.parent(row[5], row[6])
            if ctx is None:
                continue
            attributes = tracing.messaging("send", row[1], message__body__size=len(row[3]))
            span = tracer.start_span(f"send {row[1]}", context=ctx, kind=SpanKind.PRODUCER, attributes=attributes,
                                     start_time=started)  # fmt: skip
            if error is not None:
                tracing.failed(span, error)
            span.end()


def _partition(of_topic: _Partitions, key: bytes) -> int:
    """The partition ``send`` would pick for ``key``: the default partitioner over all the
    topic's partitions, listed as the producer lists them (remembered per key)."""
    all_partitions, by_key = of_topic
    if (partition := by_key.get(key)) is None:
        partition = by_key[key] = _DEFAULT_PARTITIONER(key, all_partitions, all_partitions)
    return partition


@functools.lru_cache(maxsize=64)
def _headers(text: str) -> list[tuple[str, bytes]]:
    # Nearly every row carries the same headers (the content type): parse them once. The
    # list is shared between messages; the producer only reads it.
    return [(k, v.encode()) for k, v in json.loads(text)]
