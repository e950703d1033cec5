"""Inbox and outbox: exactly-once effects on top of at-least-once Kafka.

Handling a batch of messages happens in ONE PostgreSQL transaction that

1. claims the messages' ids in the inbox (a redelivered message is already there: skipped),
2. appends the events its handling produced to the event store,
3. queues those events for Kafka in the outbox,

and only after that transaction commits is the Kafka offset committed. A crash before the
commit redelivers the batch and nothing was written; a crash after it redelivers a batch
whose ids are all in the inbox. The relay publishes the outbox afterwards.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg

from services.common.contract import CONTENT_TYPE, CloudEvent, encode
from services.common.eventstore.postgres import lock_appends
from services.common.logging import get_logger
from services.common.periodic import every
from services.common.records import Sealed

log = get_logger(__name__)


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ takes 4x as long (hot path)
class OutboxMessage:
    topic: str
    key: bytes | None
    value: bytes
    event_id: str | None = None
    headers: tuple[tuple[str, bytes], ...] = field(default=(("content-type", CONTENT_TYPE.encode()),))
    traceparent: str | None = None  # the trace context the value carries, for the relay's span
    tracestate: str | None = None


def outbox_message(event: CloudEvent, topic: str) -> OutboxMessage:
    """The Kafka message for ``event``: keyed by the customer id (the CloudEvents subject)."""
    key = event.subject.encode() if event.subject else None
    return OutboxMessage(topic=topic, key=key, value=encode(event), event_id=event.id,
                         traceparent=event.traceparent, tracestate=event.tracestate)  # fmt: skip


def sealed_message(sealed: Sealed, topic: str) -> OutboxMessage:
    """:func:`outbox_message` for an event encoded once already (:func:`records.seal`)."""
    if sealed.value is None:
        raise ValueError(f"event {sealed.stored.event_id} was sealed as never published")
    return OutboxMessage(topic=topic, key=sealed.key, value=sealed.value, event_id=sealed.stored.event_id,
                         traceparent=sealed.traceparent, tracestate=sealed.tracestate)  # fmt: skip


async def claim_inbox(conn: asyncpg.Connection, consumer: str, message_ids: Sequence[str]) -> set[str]:
    """Record ``message_ids`` as handled by ``consumer``; return those not seen before.

    Run inside the handling transaction: a concurrent claim of the same id by another
    instance waits for this transaction and then sees the id as taken.
    """
    if not message_ids:
        return set()
    rows = await conn.fetch(
        "INSERT INTO inbox (consumer, message_id) SELECT $1, unnest($2::text[])"
        " ON CONFLICT DO NOTHING RETURNING message_id",
        consumer,
        list(message_ids),
    )
    return {r[0] for r in rows}


async def prune_inbox(pool: asyncpg.Pool, retention: timedelta, chunk: int = 10_000) -> int:
    """Forget the inbox entries older than ``retention``, ``chunk`` rows per transaction;
    return how many. Safe at any age: a message read again after its entry is gone is
    decided again to the same events, which the store and the read models already hold (the
    inbox only spares that work). Instances pruning at once skip each other's rows."""
    total = 0
    while True:
        n: int = await pool.fetchval(
            # By row address (a TID scan): a join on the key would scan the whole inbox.
            "WITH gone AS (DELETE FROM inbox WHERE ctid = ANY(ARRAY("
            " SELECT ctid FROM inbox WHERE received_at < now() - $1::interval"
            " LIMIT $2 FOR UPDATE SKIP LOCKED)) RETURNING 1) SELECT count(*) FROM gone",
            retention, chunk,
        )  # fmt: skip
        total += n
        if n < chunk:
            return total


async def prune_inbox_every(pool: asyncpg.Pool, retention: timedelta, interval_s: float, stop: asyncio.Event) -> None:
    """:func:`prune_inbox` at start and every ``interval_s`` until ``stop`` is set."""

    async def prune() -> None:
        pruned = await prune_inbox(pool, retention)
        if pruned:
            log.info("inbox.pruned", rows=pruned, older_than_hours=retention / timedelta(hours=1))

    # A round that fails leaves the inbox to grow until the next one.
    await every(stop, interval_s, prune, failed="inbox.prune_failed")


async def enqueue(
    conn: asyncpg.Connection, relay: str, messages: Sequence[OutboxMessage], *, locked: bool = False
) -> None:
    """Queue ``messages`` for ``relay`` inside the caller's transaction.

    Takes the append lock (unless ``locked``: the caller holds it in this transaction) so
    that outbox ids, like event positions, follow commit order and the relay publishes one
    key's messages in the order they were decided.
    """
    if not messages:
        return
    if not locked:
        await lock_appends(conn)
    await conn.copy_records_to_table(
        "outbox",
        columns=("relay", "topic", "key", "value", "headers", "event_id", "traceparent", "tracestate"),
        records=[(relay, m.topic, m.key, m.value, _headers_json(m.headers), m.event_id, m.traceparent, m.tracestate)
                 for m in messages],
    )  # fmt: skip


@functools.lru_cache(maxsize=64)
def _headers_json(headers: tuple[tuple[str, bytes], ...]) -> str:
    # Nearly every message carries the same headers (the content type): encode them once.
    return json.dumps([[k, v.decode()] for k, v in headers])


async def outbox_backlog(conn: asyncpg.Connection | asyncpg.Pool, relay: str) -> int:
    count: int = await conn.fetchval("SELECT count(*) FROM outbox WHERE relay = $1", relay)
    return count


# --------------------------------------------------------------------------- parked rows
#
# A row the broker refuses for good is moved out of the way (see relay.py) so that the rows
# behind it are published. Parked, it keeps its outbox id; retried, it is queued again at
# the end of the outbox with a new one: a customer's later messages have been published
# by then, so it arrives after them (consumers take events by id, not by position).


@dataclass(frozen=True, slots=True)
class ParkedRow:
    id: int
    relay: str
    topic: str
    key: bytes | None
    event_id: str | None
    size: int  # bytes of the value
    created_at: datetime
    parked_at: datetime
    error: str


async def park(conn: asyncpg.Connection, errors: Mapping[int, str]) -> int:
    """Move the outbox rows ``id -> error`` to ``outbox_parked``; return how many moved."""
    if not errors:
        return 0
    moved: int = await conn.fetchval(
        "WITH why AS (SELECT * FROM unnest($1::bigint[], $2::text[]) AS w(id, error)),"
        " moved AS (DELETE FROM outbox o USING why WHERE o.id = why.id"
        "  RETURNING o.id, o.relay, o.topic, o.key, o.value, o.headers, o.event_id, o.created_at, why.error,"
        "  o.traceparent, o.tracestate),"
        " parked AS (INSERT INTO outbox_parked (id, relay, topic, key, value, headers, event_id, created_at, error,"
        "  traceparent, tracestate)"
        "  SELECT * FROM moved RETURNING 1)"
        " SELECT count(*) FROM parked",
        list(errors), list(errors.values()),
    )  # fmt: skip
    return moved


async def parked_rows(conn: asyncpg.Connection | asyncpg.Pool, relay: str | None = None) -> list[ParkedRow]:
    """The parked rows (of ``relay``, or all), oldest first."""
    rows = await conn.fetch(
        "SELECT id, relay, topic, key, event_id, length(value), created_at, parked_at, error FROM outbox_parked"
        " WHERE $1::text IS NULL OR relay = $1 ORDER BY id",
        relay,
    )
    return [ParkedRow(*r) for r in rows]


async def retry_parked(conn: asyncpg.Connection, ids: Sequence[int] | None) -> dict[int, int]:
    """Queue the parked rows ``ids`` (all when None) again, at the end of the outbox, inside
    the caller's transaction; return parked id -> new outbox id for those found."""
    await lock_appends(conn)  # outbox ids follow commit order, as enqueue keeps them
    moved = await conn.fetch(
        "DELETE FROM outbox_parked WHERE $1::bigint[] IS NULL OR id = ANY($1)"
        " RETURNING id, relay, topic, key, value, headers, event_id, traceparent, tracestate",
        None if ids is None else list(ids),
    )
    queued: dict[int, int] = {}
    for r in sorted(moved, key=lambda r: int(r["id"])):  # few rows: one statement each, in order
        queued[r["id"]] = await conn.fetchval(
            "INSERT INTO outbox (relay, topic, key, value, headers, event_id, traceparent, tracestate)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            *list(r.values())[1:],
        )
    return queued


async def parked_count(conn: asyncpg.Connection | asyncpg.Pool, relay: str) -> int:
    count: int = await conn.fetchval("SELECT count(*) FROM outbox_parked WHERE relay = $1", relay)
    return count
