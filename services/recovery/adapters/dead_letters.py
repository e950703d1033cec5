"""Dead letters as an operator works with them: read from the dead-letter topic, listed,
shown, and sent again to the topic they came from.

Where they are read from: the topic (``recovery.dlq``) is the contract and holds every dead
letter, whichever consumer wrote it, so the tool reads the topic, with a plain consumer (no
group) from where it stopped last time to the end it finds after a fetch (``highwater``;
ListOffsets is not trusted, it is wrong on the bundled broker). What it read goes into the
table ``dead_letters``, and list and show are queries of that table: filters and newest
first without a scan of weeks of messages on every command. The table is also where a
redrive records what it sent, so that a second redrive of one dead letter is deliberate
(``force``). It is an index of the topic, not a copy the services keep: a dead letter is
listed once the relay has published it, and one the topic dropped (its retention) stays
listed.

Errors: :class:`DeadLetterToolError`, whose message names what was wrong.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.common.contract import CONTENT_TYPE, ContractError, decode
from services.common.contract.events import EVENT_TYPES, DeadLettered
from services.common.settings import CommonSettings

_ACCEPT = frozenset({DeadLettered.TYPE})


class DeadLetterToolError(Exception):
    """A dead-letter command that cannot be carried out; the message says why, naming the
    argument or setting at fault."""


@dataclass(frozen=True, slots=True)
class StoredDeadLetter:
    id: str
    source: str
    letter: DeadLettered
    dlq_partition: int
    dlq_offset: int
    redrives: list[dict[str, Any]] = field(default_factory=list)

    def kept_value(self) -> bytes:
        """The bytes of the original value that the dead letter holds."""
        original = self.letter.original
        if original.value_encoding == "base64":
            return base64.b64decode(original.value)
        return original.value.encode()

    def whole_key(self) -> bool:
        """Whether the key is the original's: a dead letter marked truncated whose value is
        whole was marked for its key (cut, or not UTF-8)."""
        original = self.letter.original
        return not original.truncated or len(self.kept_value()) != original.value_bytes


@dataclass(frozen=True, slots=True)
class Synced:
    read: int  # records read from the topic
    added: int  # dead letters not listed before
    not_dead_letters: int  # records on the topic that are not dead letters (listed nowhere)
    topics: frozenset[str]  # the topics the broker has, for redrive


async def sync(conn: asyncpg.Connection, settings: CommonSettings, *, timeout_s: float = 30.0) -> Synced:
    """Read the dead-letter topic from where the last read stopped to its end into the table."""
    topic = settings.topic_dlq
    consumer = AIOKafkaConsumer(**settings.kafka_consumer_options(), group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")  # fmt: skip
    await consumer.start()
    try:
        topics = frozenset(await consumer.topics())
        if topic not in topics:
            raise DeadLetterToolError(f"TOPIC_DLQ: topic {topic} does not exist (recoveryctl topics create)")
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        stored = dict(await conn.fetch("SELECT partition, next_offset FROM dead_letter_positions WHERE dlq_topic = $1",
                                       topic))  # fmt: skip
        for tp in tps:
            if tp.partition in stored:
                consumer.seek(tp, stored[tp.partition])
            else:
                await consumer.seek_to_beginning(tp)
        read = added = skipped = 0
        pending = set(tps)
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise DeadLetterToolError(f"TOPIC_DLQ: {topic} was not read to its end within {timeout_s:.0f} s;"
                                          " what was read is kept: run the command again to go on")  # fmt: skip
            batches = await consumer.getmany(timeout_ms=200, max_records=2000)
            rows = []
            for records in batches.values():
                for r in records:
                    read += 1
                    row = _row(topic, r.partition, r.offset, r.value, settings.kafka_max_request_size)
                    if row is None:
                        skipped += 1
                    else:
                        rows.append(row)
            for tp in list(pending):
                end = consumer.highwater(tp)  # known once the partition was fetched
                if end is None:
                    continue
                position = await consumer.position(tp)
                if position > end:  # read further than the topic now holds: it was made anew
                    await consumer.seek_to_beginning(tp)
                elif position >= end:
                    pending.discard(tp)
            positions = [(tp.partition, await consumer.position(tp)) for tp in tps]
            added += await _store(conn, topic, rows, positions)
        return Synced(read, added, skipped, topics)
    finally:
        await consumer.stop()


def _row(topic: str, partition: int, offset: int, raw: bytes | None, max_bytes: int) -> tuple[Any, ...] | None:
    try:
        event = decode(raw, accept=_ACCEPT, max_bytes=max_bytes)
    except ContractError:
        return None
    data = event.data
    assert isinstance(data, DeadLettered)
    return (event.envelope.id, topic, partition, offset, data.received_at, event.envelope.source,
            data.original.topic, data.error.code, raw)  # fmt: skip


async def _store(
    conn: asyncpg.Connection, topic: str, rows: Sequence[tuple[Any, ...]], positions: Sequence[tuple[int, int]]
) -> int:
    async with conn.transaction():
        added = 0
        if rows:
            added = len(await conn.fetch(
                "INSERT INTO dead_letters (id, dlq_topic, dlq_partition, dlq_offset, received_at, source, topic,"
                " code, raw) SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::bigint[],"
                " $5::timestamptz[], $6::text[], $7::text[], $8::text[], $9::bytea[])"
                " ON CONFLICT (id) DO NOTHING RETURNING 1",
                *(list(col) for col in zip(*rows, strict=True)),
            ))  # fmt: skip
        await conn.executemany(
            "INSERT INTO dead_letter_positions (dlq_topic, partition, next_offset) VALUES ($1, $2, $3)"
            " ON CONFLICT (dlq_topic, partition) DO UPDATE SET next_offset = excluded.next_offset",
            [(topic, p, o) for p, o in positions],
        )
    return added


_COLUMNS = "id, source, raw, dlq_partition, dlq_offset, redrives"


async def find(
    conn: asyncpg.Connection,
    *,
    topic: str | None = None,
    code: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
    before: str | None = None,
) -> list[StoredDeadLetter]:
    """Dead letters, newest first: of the original ``topic``, with the error ``code``,
    received ``since``; at most ``limit``, after the :func:`cursor` ``before`` of the last
    one of a page."""
    at, after_id = _uncursor(before)
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM dead_letters WHERE ($1::text IS NULL OR topic = $1)"
        " AND ($2::text IS NULL OR code = $2) AND ($3::timestamptz IS NULL OR received_at >= $3)"
        " AND ($5::timestamptz IS NULL OR received_at < $5 OR (received_at = $5 AND id > $6))"
        " ORDER BY received_at DESC, id LIMIT $4",
        topic, code, since, limit, at, after_id,
    )  # fmt: skip
    return [_stored(r) for r in rows]


def cursor(d: StoredDeadLetter) -> str:
    """Where the page after ``d`` starts (for ``find(before=...)``)."""
    return f"{d.letter.received_at.isoformat()}|{d.id}"


def _uncursor(text: str | None) -> tuple[datetime | None, str | None]:
    at, _, letter_id = (text or "").partition("|")
    try:
        return (datetime.fromisoformat(at), letter_id) if letter_id else (None, None)
    except ValueError:
        return None, None


async def get(conn: asyncpg.Connection, letter_id: str, *, for_update: bool = False) -> StoredDeadLetter:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM dead_letters WHERE id = $1" + (" FOR UPDATE" if for_update else ""), letter_id
    )
    if row is None:
        raise DeadLetterToolError(f"ID: no dead letter {letter_id} on the dead-letter topic")
    return _stored(row)


def _stored(row: asyncpg.Record) -> StoredDeadLetter:
    event = decode(row["raw"], accept=_ACCEPT, max_bytes=len(row["raw"]))
    assert isinstance(event.data, DeadLettered)
    return StoredDeadLetter(row["id"], row["source"], event.data, row["dlq_partition"], row["dlq_offset"],
                            json.loads(row["redrives"]))  # fmt: skip


def fixed_message(raw: bytes, original_topic: str, settings: CommonSettings) -> bytes:
    """``raw`` (a fixed message from a file) checked as the consumers will check it."""
    try:
        event = decode(raw, max_bytes=settings.kafka_max_request_size)
    except ContractError as exc:
        if not exc.details:
            raise DeadLetterToolError(f"--file: {exc.message}") from None
        where = exc.details[0]
        loc = f"data.{where['loc']}" if exc.code == "invalid_data" else where["loc"]
        raise DeadLetterToolError(f"--file: {loc}: {where['msg']}") from None
    logical = EVENT_TYPES[event.envelope.type].TOPIC
    home = settings.topic(logical)
    if original_topic in settings.all_topics() and home != original_topic:
        raise DeadLetterToolError(
            f"--file: type {event.envelope.type} travels on {home}, not on {original_topic} (the dead letter's)"
        )
    return raw.strip()


async def redrive(
    conn: asyncpg.Connection,
    producer: Any,
    letter_id: str,
    *,
    fixed: bytes | None,
    force: bool,
    topics: frozenset[str],
    now: datetime,
) -> dict[str, Any]:
    """Publish the dead letter's message again to its original topic with its original
    key: ``fixed`` (from a file), or as it was kept when ``fixed`` is None (only if kept
    whole). Recorded on the dead letter; a second redrive needs ``force``. Returns the
    record. The row stays locked until the broker acknowledged, so two operators cannot
    both redrive one dead letter; a crash after the send and before the commit leaves it
    unrecorded (the message was sent: consumers drop a repeat by its event id)."""
    async with conn.transaction():
        stored = await get(conn, letter_id, for_update=True)
        original = stored.letter.original
        if stored.redrives and not force:
            last = stored.redrives[-1]
            raise DeadLetterToolError(
                f"ID: dead letter {letter_id} was redriven at {last['at']} ({last['how']}); --force sends it again"
            )
        if not stored.whole_key():
            raise DeadLetterToolError(f"ID: dead letter {letter_id} did not keep the original key whole: it cannot "
                                      f"be sent with its key")  # fmt: skip
        if fixed is None:
            value = stored.kept_value()
            if original.truncated:
                raise DeadLetterToolError(
                    f"--as-is: dead letter {letter_id} kept only {len(value)} of the original's "
                    f"{original.value_bytes} bytes; redrive it with --file FIXED.json"
                )
            if original.value_sha256 is not None and hashlib.sha256(value).hexdigest() != original.value_sha256:
                raise DeadLetterToolError(f"--as-is: dead letter {letter_id}'s value does not match its sha256")
        else:
            value = fixed
        if original.topic not in topics:
            raise DeadLetterToolError(f"ID: the original topic {original.topic} does not exist on the broker")
        key = original.key.encode() if original.key is not None else None
        sent = await (await producer.send(original.topic, value, key=key,
                                          headers=[("content-type", CONTENT_TYPE.encode())]))  # fmt: skip
        record = {
            "at": now.isoformat(),
            "how": "as-is" if fixed is None else "file",
            "topic": original.topic,
            "partition": sent.partition,
            "offset": sent.offset,
            "bytes": len(value),
            "sha256": hashlib.sha256(value).hexdigest(),
        }
        await conn.execute(
            "UPDATE dead_letters SET redriven_at = $2, redrives = redrives || $3::jsonb WHERE id = $1",
            letter_id, now, json.dumps([record]),
        )  # fmt: skip
    return record
