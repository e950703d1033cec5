"""Poison isolation: one message that makes handling fail does not hold up the others.

Every consumer hands its batches to the application through :func:`isolate`. While no
message is bad that is one call and nothing more. When the call fails:

- a transient failure (:func:`services.common.failures.is_transient`) is raised as it is:
  the consumer handles the batch again after a backoff, and nothing is dead-lettered;
- any other failure splits the batch in two halves, handled in order (the first half is
  over before the second starts, so one customer's messages keep their order), each split
  again while it fails, until the message at fault stands alone. That message is tried
  ``attempts`` times in all, with a short backoff between tries, and then dead-lettered as
  ``unprocessable`` with the exception's class and the start of its text, while the rest
  of the batch is handled.

Each part that succeeds has committed its own transaction, so a part handled again after a
crash or a transient failure finds its messages in the inbox. The dead letter goes out
through the outbox in a transaction of its own, which also records the message's position
(topic, partition, offset) in the inbox under ``<consumer>.poison``: a redelivered batch
that fails again drops the messages quarantined before without trying them, and never
dead-letters one twice (the dead letter's event id is derived from the position too). The
position, not the CloudEvent id, is what is remembered: the same event sent again after a
fix (from the dead-letter topic, at a new offset) is handled as new.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
from pydantic import ValidationError

from services.common.clock import Clock
from services.common.contract import ContractError
from services.common.failures import Backoff, is_transient, reason
from services.common.kafka import DEFAULT_DEAD_LETTER_LIMITS, DeadLetterLimits, dead_letter
from services.common.logging import get_logger
from services.common.outbox import claim_inbox, enqueue, outbox_message
from services.common.records import InboundRecord, derived_event_id

log = get_logger(__name__)

R = TypeVar("R")
Handle = Callable[[list[InboundRecord]], Awaitable[R]]

UNPROCESSABLE = "unprocessable"


def position(record: InboundRecord) -> str:
    """Where a record was read (its identity for the quarantine)."""
    return f"{record.topic}/{record.partition}/{record.offset}"


@dataclass(frozen=True)
class Quarantine:
    """Where a consumer's poison messages go: dead letters on ``dlq_topic`` through the
    outbox of ``relay``, positions remembered in the inbox as ``<consumer>.poison``."""

    pool: asyncpg.Pool
    consumer: str
    relay: str
    dlq_topic: str
    source: str
    clock: Clock
    attempts: int = 3
    retry_base_s: float = 0.5
    retry_max_s: float = 30.0
    on_dead_lettered: Callable[[InboundRecord, BaseException], None] | None = None
    limits: DeadLetterLimits = DEFAULT_DEAD_LETTER_LIMITS

    @property
    def inbox_consumer(self) -> str:
        return f"{self.consumer}.poison"

    async def quarantined(self, records: Sequence[InboundRecord]) -> set[str]:
        """The positions among ``records`` dead-lettered before (a redelivery)."""
        rows = await self.pool.fetch(
            "SELECT message_id FROM inbox WHERE consumer = $1 AND message_id = ANY($2::text[])",
            self.inbox_consumer, [position(r) for r in records],
        )  # fmt: skip
        return {r[0] for r in rows}

    async def put(self, record: InboundRecord, exc: BaseException) -> bool:
        """Dead-letter ``record`` as unprocessable, once; False if it was already."""
        where = position(record)
        error = ContractError(UNPROCESSABLE, reason(exc), _details(exc))
        letter = dead_letter(error, topic=record.topic, partition=record.partition, offset=record.offset,
                             key=record.key, value=record.value, source=self.source, now=self.clock(),
                             limits=self.limits)  # fmt: skip
        letter = letter.model_copy(update={"id": derived_event_id(where, self.inbox_consumer, 0)})
        async with self.pool.acquire() as conn, conn.transaction():
            if not await claim_inbox(conn, self.inbox_consumer, [where]):
                return False
            await enqueue(conn, self.relay, [outbox_message(letter, self.dlq_topic)])
        log.warning("message.dead_lettered", code=UNPROCESSABLE, topic=record.topic, partition=record.partition,
                    offset=record.offset, error=type(exc).__name__)  # fmt: skip
        if self.on_dead_lettered is not None:
            self.on_dead_lettered(record, exc)
        return True


def _details(exc: BaseException) -> list[dict[str, Any]]:
    """What an operator needs to find the fault, never the input: the exception's full
    class name, PostgreSQL's SQLSTATE, pydantic's error locations."""
    kind = type(exc)
    details: list[dict[str, Any]] = [{"exception": f"{kind.__module__}.{kind.__qualname__}"}]
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(exc, asyncpg.PostgresError) and sqlstate:
        details[0]["sqlstate"] = str(sqlstate)
    if isinstance(exc, ValidationError):
        details += [{"loc": ".".join(map(str, e["loc"])), "msg": e["msg"]} for e in exc.errors()[:10]]
    return details


async def isolate(records: list[InboundRecord], handle: Handle[R], quarantine: Quarantine) -> list[R]:
    """``handle(records)``, and if it fails for a message's fault, its parts as the module
    says; return the results of the calls that succeeded, in order. Raises only transient
    failures (and those of the quarantine's own transaction)."""
    results: list[R] = []
    failed = await _try(records, handle, results)
    if failed is None:
        return results
    log.warning("batch.isolating", records=len(records), error=type(failed).__name__)
    done = await quarantine.quarantined(records)
    if done:  # handled before up to these: the rest may go through whole now
        records = [r for r in records if position(r) not in done]
        failed = None
    await _part(records, failed, handle, quarantine, results)
    return results


async def _part(
    part: list[InboundRecord], failed: Exception | None, handle: Handle[R], q: Quarantine, results: list[R]
) -> None:
    """Handle ``part`` (known to fail with ``failed`` already, if given), split while it fails."""
    if not part:
        return
    if failed is None:
        failed = await _try(part, handle, results)
        if failed is None:
            return
    if len(part) > 1:
        half = len(part) // 2
        await _part(part[:half], None, handle, q, results)
        await _part(part[half:], None, handle, q, results)
        return
    record = part[0]
    log.warning("message.isolated", topic=record.topic, partition=record.partition, offset=record.offset,
                error=type(failed).__name__)  # fmt: skip
    backoff = Backoff(q.retry_base_s, q.retry_max_s)
    for _ in range(q.attempts - 1):
        await asyncio.sleep(backoff.next_delay())
        failed = await _try(part, handle, results)
        if failed is None:
            return
    await q.put(record, failed)


async def _try(part: list[InboundRecord], handle: Handle[R], results: list[R]) -> Exception | None:
    """Handle ``part``: None once done, or the failure if it is the fault of a message in it."""
    try:
        results.append(await handle(part))
    except Exception as exc:
        if is_transient(exc):
            raise
        return exc
    return None
