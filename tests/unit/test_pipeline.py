"""The pipeline's rules (pure asyncio, no servers; the real broker and PostgreSQL are in
tests/integration/test_pipeline.py): the batch behind waits for the one ahead only if they
share a key and gives up if that one failed; batches are settled in order; a failed fetch
ends the run with the batch in flight settled."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest
from aiokafka.errors import KafkaError

import services.common.pipeline as pipeline_module
from services.common.pipeline import BatchAbandoned, BatchPipeline, InFlight
from services.common.records import InboundRecord
from services.common.runtime import OffsetCommitter


async def _settles(coro: Awaitable[object], within_s: float = 0.05) -> bool:
    task = asyncio.ensure_future(coro)
    done, _ = await asyncio.wait([task], timeout=within_s)
    if not done:
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
    await asyncio.sleep(0.01)
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


class _Message:
    """A subscriber's message as the pipeline and the committer use it (no aiokafka consumer
    behind it: the committer acknowledges through the message)."""

    def __init__(self) -> None:
        self.acks = 0

    async def ack(self) -> None:
        self.acks += 1


class _Consumer:
    """What the pipeline asks of the consumer: the records fetched already, batch by batch."""

    def __init__(self, batches: list[list[InboundRecord]], fail_at: int | None = None) -> None:
        self.batches, self.fail_at, self.calls = batches, fail_at, 0

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[str, list[Any]]:
        self.calls += 1
        if self.calls == self.fail_at:
            raise KafkaError("the broker went away (on purpose)")
        return {"tp": self.batches.pop(0)} if self.batches else {}


def _records(n: int, start: int) -> list[InboundRecord]:
    return [InboundRecord("t", 0, i, b"k", b"{}") for i in range(start, start + n)]


def _pipeline(
    monkeypatch: pytest.MonkeyPatch, consumer: _Consumer, seen: list[tuple[int, bool]], settled: list[int]
) -> BatchPipeline[int]:
    monkeypatch.setattr(pipeline_module, "consumer_of", lambda _message: consumer)

    async def handle(records: list[InboundRecord], flight: InFlight, before: InFlight | None) -> int:
        seen.append((records[0].offset or 0, before is not None))
        await asyncio.sleep(0.01)
        return len(records)

    return BatchPipeline(handle, OffsetCommitter(), lambda n, _s: settled.append(n), max_records=10)


async def test_while_the_consumer_has_records_each_batch_runs_behind_the_one_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[int, bool]] = []
    settled: list[int] = []
    consumer = _Consumer([_records(3, 10), _records(2, 20)])
    message = _Message()
    await _pipeline(monkeypatch, consumer, seen, settled).run(message, _records(4, 0))  # type: ignore[arg-type]
    assert seen == [(0, False), (10, True), (20, True)]
    assert settled == [4, 3, 2]  # in order, each after the one before
    assert message.acks == 3


async def test_a_fetch_that_fails_ends_the_run_with_the_batch_in_flight_settled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[int, bool]] = []
    settled: list[int] = []
    consumer = _Consumer([_records(3, 10)], fail_at=1)
    message = _Message()
    await _pipeline(monkeypatch, consumer, seen, settled).run(message, _records(4, 0))  # type: ignore[arg-type]
    assert settled == [4]
    assert message.acks == 1
    assert consumer.batches, "what the consumer holds is left for the subscriber's own fetch"
