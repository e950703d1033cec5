"""Two batches in hand at once while a backlog lasts: the next batch is read and decided
while the one before it is still in PostgreSQL (appending, projecting, committing).

Handled one after the other, a batch's work alternates between the service's own CPU
(decoding, deciding, encoding rows) and PostgreSQL's, and each waits for the other about
half of the time. Here the subscriber's handler starts its batch as a task and, while that
runs, takes what the consumer has already fetched as the next batch and starts it too; it
goes on so, one batch behind the other, until the consumer has nothing more, and returns
once every batch it started is settled. So nothing changes when records come one at a time.

What stays as it was:

- A batch is settled (its offsets handed to the committer) only once its transaction
  committed, and only after the batch before it was settled.
- A batch that fails is handled again together with the one behind it: once both are over,
  the consumer seeks back to the earliest record of the two, per partition, and the handler
  raises after a backoff (exponential, capped, jittered: :class:`Backoff`). What the second
  had committed meanwhile is found in the inbox then, as after any redelivery. The handler
  given here isolates poison messages itself (:mod:`services.common.isolate`), so only
  transient failures come this far.
- Two batches that share a key (a customer) never overlap: the batch behind waits, before
  it reads anything, for the one before it to end, and gives up if that one failed, so one
  customer's messages are still handled in their order. Batches with no key in common touch
  nothing that two instances of the service do not also touch at the same time.
- The handler runs inside the subscriber's loop (as the top-up does), so the consumer is
  never read or rewound from two places at once.

The pipeline sees the consumer only through :class:`BatchConsumer` (the few things it asks
of it), so its rules are tested with an in-memory consumer; the Kafka one is
:class:`services.common.consumer.SubscriberConsumer`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from services.common.failures import Backoff, Transient
from services.common.gc_tuning import collect_if_due
from services.common.logging import get_logger
from services.common.records import InboundRecord

log = get_logger(__name__)

R = TypeVar("R")


class BatchConsumer(Protocol):
    """What the pipeline asks of the consumer behind a subscriber's batch."""

    async def fetched(self, max_records: int) -> list[InboundRecord]:
        """Up to ``max_records`` records fetched already, without waiting for more (none if
        it cannot read past the subscriber's batch)."""
        ...

    def rewind(self, records: list[InboundRecord]) -> None:
        """Seek back to the earliest of ``records`` per partition, to read them again."""
        ...

    async def commit(self, records: list[InboundRecord]) -> None:
        """Have the offsets of ``records`` (a settled batch) committed."""
        ...


class BatchAbandoned(Transient):
    """The batch before this one shared a key with it and failed: this one is handled again
    after it, in order."""


@dataclass(eq=False)
class InFlight:
    """What a batch in hand tells the batch behind it: its keys (once decoded) and whether
    it is over, and how."""

    keys: frozenset[str] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    failed: bool = False

    async def wait_if_shared(self, keys: Collection[str]) -> None:
        """Wait for this batch to end if it may touch any of ``keys`` (keys not known yet
        count as shared); raise :class:`BatchAbandoned` if it then failed."""
        if not self.done.is_set():
            if self.keys is not None and self.keys.isdisjoint(keys):
                return
            await self.done.wait()
        if self.failed and (self.keys is None or not self.keys.isdisjoint(keys)):
            raise BatchAbandoned("the batch before this one failed and shared a customer with it")

    def after(self, before: InFlight | None) -> Callable[[frozenset[str]], Awaitable[None]]:
        """The hook a handler awaits with this batch's keys once it has decoded them, before
        it reads anything: notes them here for the batch behind and waits for ``before`` if
        the two may share one."""

        async def ready(keys: frozenset[str]) -> None:
            self.keys = keys
            if before is not None:
                await before.wait_if_shared(keys)

        return ready


Handler = Callable[[list[InboundRecord], InFlight, InFlight | None], Awaitable[R]]


@dataclass(eq=False)
class _Batch(Generic[R]):
    records: list[InboundRecord]
    flight: InFlight
    task: asyncio.Task[tuple[R, float]]


class BatchPipeline(Generic[R]):
    """Runs a subscriber's batches through ``handle``, the next one in flight behind the one
    being settled while the consumer has records (unless not ``overlap``: one at a time);
    ``on_settled`` gets each committed batch's result and duration; ``backoff`` spaces the
    tries of a batch that keeps failing."""

    def __init__(
        self,
        handle: Handler[R],
        on_settled: Callable[[R, float], None],
        max_records: int,
        *,
        overlap: bool = True,
        backoff: Backoff | None = None,
    ) -> None:
        self._handle = handle
        self._backoff = backoff or Backoff(1.0, 1.0)
        self._overlap = overlap
        self._on_settled = on_settled
        self._max_records = max_records
        self._stopping = False
        self._idle = asyncio.Event()
        self._idle.set()

    async def run(self, consumer: BatchConsumer, records: list[InboundRecord]) -> None:
        """Handle ``records`` (the subscriber's batch) and then, while the consumer has more
        fetched already, those too; return once all are settled. Raises if one failed, after
        seeking back to it."""
        self._idle.clear()
        try:
            current = self._start(records, None)
            while True:
                behind = None
                if self._overlap and not self._stopping:
                    more = await self._fetched(consumer)
                    if more:
                        behind = self._start(more, current.flight)
                await self._settle(consumer, current, behind)
                collect_if_due()  # a batch is always in hand while they overlap: see gc_tuning
                if behind is None:
                    return
                current = behind
        finally:
            self._idle.set()

    async def _fetched(self, consumer: BatchConsumer) -> list[InboundRecord]:
        """What the consumer has fetched already (nothing if it cannot say: the batch in
        flight is settled first, and the subscriber's own fetch meets the error)."""
        try:
            return await consumer.fetched(self._max_records)
        except Exception as exc:
            log.warning("pipeline.fetch_failed", error=type(exc).__name__)
            return []

    def _start(self, records: list[InboundRecord], before: InFlight | None) -> _Batch[R]:
        flight = InFlight()
        return _Batch(records, flight, asyncio.create_task(self._run(records, flight, before)))

    async def _run(self, records: list[InboundRecord], flight: InFlight, before: InFlight | None) -> tuple[R, float]:
        started = time.perf_counter()
        try:
            result = await self._handle(records, flight, before)
        except BaseException:
            flight.failed = True
            raise
        finally:
            flight.done.set()
        return result, time.perf_counter() - started

    async def _settle(self, consumer: BatchConsumer, batch: _Batch[R], behind: _Batch[R] | None) -> None:
        try:
            result, seconds = await batch.task
        except Exception as exc:
            log.warning("batch.failed", records=len(batch.records), error=type(exc).__name__)
            again = list(batch.records)
            if behind is not None:
                await asyncio.wait([behind.task])  # let it end, then take it again too
                if not behind.task.cancelled():
                    behind.task.exception()  # retrieved: it is redelivered with this one
                again += behind.records
            consumer.rewind(again)
            await self._backoff.after(exc)  # back off before they are handled again
            raise
        self._backoff.reset()
        await consumer.commit(batch.records)
        self._on_settled(result, seconds)

    async def stop(self) -> None:
        """Take no further batch into the handler's run, and wait for it to return."""
        self._stopping = True
        await self._idle.wait()
