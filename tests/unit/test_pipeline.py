"""The pipeline's rules (pure asyncio, no servers; the real broker and PostgreSQL are in
tests/integration/test_pipeline.py): the batch behind waits for the one ahead only if they
share a key and gives up if that one failed; batches are settled and committed in order; a
failed batch is rewound with the one behind it; a failed fetch ends the run with the batch in
flight settled. The consumer is an in-memory :class:`BatchConsumer`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import pytest
from aiokafka.errors import KafkaError

from services.common.failures import Backoff
from services.common.pipeline import BatchAbandoned, BatchConsumer, BatchPipeline, InFlight
from services.common.records import InboundRecord


async def _idle() -> None:
    """Until the loop has run every step that is ready: what is still pending then waits
    for an event that nothing has set (the pipeline is pure asyncio, with no timers)."""
    for _ in range(10):
        await asyncio.sleep(0)


async def _settles(coro: Awaitable[object]) -> bool:
    task = asyncio.ensure_future(coro)
    await _idle()
    if not task.done():
        task.cancel()
        return False
    task.result()
    return True


async def test_a_batch_sharing_no_customer_goes_on_at_once() -> None:
    ahead = InFlight(keys=frozenset({"c-1", "c-2"}))
    assert await _settles(ahead.wait_if_shared({"c-3"}))


async def test_a_batch_sharing_a_customer_waits_for_the_one_ahead_to_end() -> None:
    ahead = InFlight(keys=frozenset({"c-1", "c-2"}))
    assert not await _settles(ahead.wait_if_shared({"c-2", "c-3"}))
    waiting = asyncio.ensure_future(ahead.wait_if_shared({"c-2"}))
    await _idle()
    assert not waiting.done()
    ahead.done.set()
    await asyncio.wait_for(waiting, 1)


async def test_keys_not_known_yet_count_as_shared() -> None:
    assert not await _settles(InFlight().wait_if_shared({"c-1"}))


async def test_after_a_failed_batch_ahead_one_sharing_a_customer_gives_up_and_others_go_on() -> None:
    ahead = InFlight(keys=frozenset({"c-1"}))
    ahead.failed = True
    ahead.done.set()
    with pytest.raises(BatchAbandoned):
        await ahead.wait_if_shared({"c-1", "c-9"})
    await ahead.wait_if_shared({"c-9"})  # no customer in common: handled now, in its order
    unknown = InFlight(failed=True)
    unknown.done.set()
    with pytest.raises(BatchAbandoned):
        await unknown.wait_if_shared({"c-9"})


class FakeConsumer:
    """A :class:`BatchConsumer` in memory: the batches it has fetched already (handed out one
    per call), what was rewound and what was committed, in order."""

    def __init__(self, batches: list[list[InboundRecord]] | None = None, fail_at: int | None = None) -> None:
        self.batches = list(batches or [])
        self.fail_at = fail_at
        self.calls = 0
        self.rewound: list[list[InboundRecord]] = []
        self.committed: list[list[InboundRecord]] = []

    async def fetched(self, max_records: int) -> list[InboundRecord]:
        self.calls += 1
        if self.calls == self.fail_at:
            raise KafkaError("the broker went away (on purpose)")
        return self.batches.pop(0)[:max_records] if self.batches else []

    def rewind(self, records: list[InboundRecord]) -> None:
        self.rewound.append(list(records))

    async def commit(self, records: list[InboundRecord]) -> None:
        self.committed.append(list(records))


def test_the_fake_consumer_has_what_the_pipeline_asks() -> None:
    consumer: BatchConsumer = FakeConsumer()
    assert consumer is not None


def _records(n: int, start: int, customer: str = "c") -> list[InboundRecord]:
    return [InboundRecord("t", 0, i, f"{customer}-{i}".encode(), b"{}") for i in range(start, start + n)]


def _offsets(batches: list[list[InboundRecord]]) -> list[list[int | None]]:
    return [[r.offset for r in b] for b in batches]


class Handler:
    """Takes each record's key as its customer; fails the batches starting at ``fail``; a
    batch starting at an offset in ``held`` ends only once ``release`` is set, and the others
    set ``behind_ended`` when they end."""

    def __init__(self, fail: frozenset[int] = frozenset(), held: frozenset[int] = frozenset()) -> None:
        self.fail, self.held = fail, held
        self.seen: list[tuple[int, bool]] = []
        self.release, self.behind_ended = asyncio.Event(), asyncio.Event()

    async def __call__(self, records: list[InboundRecord], flight: InFlight, before: InFlight | None) -> int:
        first = records[0].offset or 0
        self.seen.append((first, before is not None))
        flight.keys = frozenset(r.key.decode() for r in records if r.key)
        if before is not None:
            await before.wait_if_shared(flight.keys)
        if first in self.held:
            await self.release.wait()
        else:
            await asyncio.sleep(0)  # a handler yields while it works: the batch behind starts
            self.behind_ended.set()
        if first in self.fail:
            raise ConnectionError("PostgreSQL went away (on purpose)")
        return len(records)


def _pipeline(handler: Handler, settled: list[int], *, overlap: bool = True) -> BatchPipeline[int]:
    no_wait = Backoff(0.0, 0.0)
    return BatchPipeline(handler, lambda n, _s: settled.append(n), max_records=10, overlap=overlap, backoff=no_wait)


async def test_while_the_consumer_has_records_each_batch_runs_behind_the_one_before() -> None:
    handler, settled = Handler(), list[int]()
    consumer = FakeConsumer([_records(3, 10), _records(2, 20)])
    await _pipeline(handler, settled).run(consumer, _records(4, 0))
    assert handler.seen == [(0, False), (10, True), (20, True)]
    assert settled == [4, 3, 2]  # in order, each after the one before
    assert _offsets(consumer.committed) == [[0, 1, 2, 3], [10, 11, 12], [20, 21]]
    assert consumer.rewound == []


async def test_a_batch_that_ends_first_is_still_committed_after_the_one_ahead() -> None:
    handler, settled = Handler(held=frozenset({0})), list[int]()
    consumer = FakeConsumer([_records(2, 10, customer="other")])
    run = asyncio.create_task(_pipeline(handler, settled).run(consumer, _records(2, 0)))
    await asyncio.wait_for(handler.behind_ended.wait(), 5)  # the batch behind ended first
    assert settled == []
    handler.release.set()
    await run
    assert settled == [2, 2]
    assert _offsets(consumer.committed) == [[0, 1], [10, 11]]


async def test_a_fetch_that_fails_ends_the_run_with_the_batch_in_flight_settled() -> None:
    handler, settled = Handler(), list[int]()
    consumer = FakeConsumer([_records(3, 10)], fail_at=1)
    await _pipeline(handler, settled).run(consumer, _records(4, 0))
    assert settled == [4]
    assert _offsets(consumer.committed) == [[0, 1, 2, 3]]
    assert consumer.batches, "what the consumer holds is left for the subscriber's own fetch"


async def test_a_failed_batch_is_rewound_with_the_one_behind_it_and_nothing_of_either_is_committed() -> None:
    handler, settled = Handler(fail=frozenset({0})), list[int]()
    consumer = FakeConsumer([_records(2, 10, customer="other"), _records(2, 20)])
    with pytest.raises(ConnectionError):
        await _pipeline(handler, settled).run(consumer, _records(2, 0))
    assert settled == []
    assert consumer.committed == []
    assert _offsets(consumer.rewound) == [[0, 1, 10, 11]]
    assert _offsets(consumer.batches) == [[20, 21]], "no batch is taken after a failure"


async def test_a_batch_sharing_a_customer_with_a_failed_one_gives_up_and_is_rewound_with_it() -> None:
    handler, settled = Handler(fail=frozenset({0})), list[int]()
    consumer = FakeConsumer([_records(2, 0)])  # the same customers again
    with pytest.raises(ConnectionError):
        await _pipeline(handler, settled).run(consumer, _records(2, 0))
    assert _offsets(consumer.rewound) == [[0, 1, 0, 1]]
    assert handler.seen == [(0, False), (0, True)]


async def test_a_run_after_a_failed_one_handles_and_commits_its_batch() -> None:
    handler, settled = Handler(fail=frozenset({0})), list[int]()
    pipeline = _pipeline(handler, settled)
    with pytest.raises(ConnectionError):
        await pipeline.run(FakeConsumer(), _records(1, 0))
    again = FakeConsumer()
    await pipeline.run(again, _records(1, 5))
    assert settled == [1]
    assert _offsets(again.committed) == [[5]]


async def test_without_overlap_the_consumer_is_not_read_past_the_batch() -> None:
    handler, settled = Handler(), list[int]()
    consumer = FakeConsumer([_records(3, 10)])
    await _pipeline(handler, settled, overlap=False).run(consumer, _records(4, 0))
    assert consumer.calls == 0
    assert settled == [4]
    assert handler.seen == [(0, False)]


async def test_once_stopping_no_further_batch_is_taken_and_stop_waits_for_the_run() -> None:
    handler, settled = Handler(held=frozenset({0})), list[int]()
    consumer = FakeConsumer([_records(3, 10), _records(2, 20)])
    pipeline = _pipeline(handler, settled)
    run = asyncio.create_task(pipeline.run(consumer, _records(4, 0)))
    await asyncio.wait_for(handler.behind_ended.wait(), 5)  # the batch behind is taken, the first is held
    handler.release.set()  # the first ends only once the loop runs again: stop() asks before
    await pipeline.stop()
    assert run.done()
    assert settled == [4, 3]
    assert _offsets(consumer.batches) == [[20, 21]]
