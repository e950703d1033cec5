"""How a batch is split around a poison message (pure asyncio; the real broker and
PostgreSQL are in tests/integration/test_isolation.py): halves in order, the message at
fault tried alone a bounded number of times and then quarantined, the rest handled once;
transient failures go up untouched."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest

from services.common.clock import system_clock
from services.common.isolate import Quarantine, isolate, position
from services.common.pipeline import InFlight
from services.common.records import InboundRecord
from services.recovery import bootstrap
from services.recovery.application import BatchResult
from services.recovery.settings import RecoverySettings


@dataclass(frozen=True)
class Kept(Quarantine):
    """A quarantine that keeps what it is given (the real one writes to PostgreSQL)."""

    put_aside: list[tuple[int | None, str]] = field(default_factory=list)
    before: frozenset[str] = frozenset()  # positions quarantined by an earlier delivery

    async def quarantined(self, records: Sequence[InboundRecord]) -> set[str]:
        return {position(r) for r in records} & self.before

    async def put(self, record: InboundRecord, exc: BaseException) -> bool:
        self.put_aside.append((record.offset, type(exc).__name__))
        return True


def _kept(**kwargs: Any) -> Kept:
    return Kept(None, "c", "r", "dlq", "tests", system_clock, attempts=3, retry_base_s=0.001, retry_max_s=0.002,
                **kwargs)  # fmt: skip


def _batch(n: int) -> list[InboundRecord]:
    return [InboundRecord("t", 0, i, b"k", b"{}") for i in range(n)]


class Handler:
    """Handles records, failing any call that holds a record in ``bad`` (with ``error``)."""

    def __init__(self, bad: set[int], error: type[Exception] = ValueError, heal_after: int | None = None) -> None:
        self.bad = bad
        self.error = error
        self.heal_after = heal_after  # calls after which the bad records go through
        self.calls: list[list[int]] = []
        self.handled: list[int] = []  # in commit order

    async def __call__(self, records: list[InboundRecord]) -> int:
        offsets = [r.offset for r in records if r.offset is not None]
        self.calls.append(offsets)
        healed = self.heal_after is not None and len(self.calls) > self.heal_after
        if not healed and self.bad.intersection(offsets):
            raise self.error(f"cannot take {sorted(self.bad.intersection(offsets))}")
        self.handled += offsets
        return len(offsets)


async def test_a_good_batch_is_one_call() -> None:
    handler, q = Handler(set()), _kept()
    assert await isolate(_batch(10), handler, q) == [10]
    assert handler.calls == [list(range(10))]


async def test_the_message_at_fault_is_dead_lettered_and_the_rest_handled_once_in_order() -> None:
    handler, q = Handler({6}), _kept()
    results = await isolate(_batch(10), handler, q)
    assert handler.handled == [0, 1, 2, 3, 4, 5, 7, 8, 9]
    assert sum(results) == 9
    assert q.put_aside == [(6, "ValueError")]
    assert handler.calls.count([6]) == 3, "tried alone three times in all"
    assert len(handler.calls) <= 2 * 4 + 3, "about two calls per halving"


async def test_several_poison_messages_are_each_isolated() -> None:
    handler, q = Handler({0, 5, 9}), _kept()
    await isolate(_batch(10), handler, q)
    assert handler.handled == [1, 2, 3, 4, 6, 7, 8]
    assert [o for o, _ in q.put_aside] == [0, 5, 9]


async def test_a_batch_of_one_poison_message_is_tried_the_bounded_number_of_times() -> None:
    handler, q = Handler({0}), _kept()
    assert await isolate(_batch(1), handler, q) == []
    assert handler.calls == [[0], [0], [0]]
    assert q.put_aside == [(0, "ValueError")]


async def test_a_message_that_goes_through_on_a_later_try_is_not_dead_lettered() -> None:
    handler, q = Handler({3}, heal_after=7), _kept()
    await isolate(_batch(8), handler, q)
    assert sorted(handler.handled) == list(range(8))
    assert q.put_aside == []


@pytest.mark.parametrize(
    "error", [asyncpg.exceptions.AdminShutdownError, asyncpg.exceptions.DeadlockDetectedError, ConnectionResetError]
)
async def test_a_transient_failure_goes_up_whole_and_nothing_is_dead_lettered(error: type[Exception]) -> None:
    handler, q = Handler({4}, error=error), _kept()
    with pytest.raises(error):
        await isolate(_batch(10), handler, q)
    assert handler.calls == [list(range(10))]
    assert q.put_aside == []


async def test_a_transient_failure_while_splitting_goes_up_too() -> None:
    calls = 0

    async def handle(records: list[InboundRecord]) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("poison somewhere")
        raise asyncpg.exceptions.ConnectionDoesNotExistError("the database went away")

    q = _kept()
    with pytest.raises(asyncpg.exceptions.ConnectionDoesNotExistError):
        await isolate(_batch(4), handle, q)
    assert q.put_aside == []


async def test_a_redelivered_poison_message_quarantined_before_is_dropped_without_a_try() -> None:
    handler = Handler({2})
    q = _kept(before=frozenset({"t/0/2"}))
    await isolate(_batch(5), handler, q)
    assert handler.calls == [[0, 1, 2, 3, 4], [0, 1, 3, 4]], "the rest goes through whole"
    assert q.put_aside == []


async def test_while_a_recovery_batch_is_handled_in_parts_the_batch_behind_sees_all_its_customers() -> None:
    """The parts of a split batch do not stand for it in the pipeline: the keys the batch
    behind waits on stay the whole batch's until every part is over."""
    ours = InFlight()
    seen: list[frozenset[str] | None] = []  # the keys the batch behind would see, at each call

    class Service:
        async def handle_records(self, records: list[InboundRecord], ready: Any) -> BatchResult:
            seen.append(ours.keys)
            await ready(frozenset(r.key.decode() for r in records if r.key))  # as the application does
            if any(r.offset == 1 for r in records):
                raise ValueError("poison")
            return BatchResult(accepted=len(records))

    runtime = bootstrap.Runtime(RecoverySettings())
    runtime.service = Service()  # type: ignore[assignment]
    runtime.quarantine = _kept()
    batch = [InboundRecord("t", 0, i, f"cust-{i}".encode(), b"{}") for i in range(4)]
    result = await runtime.handle(batch, ours, None)
    assert result.accepted == 3
    everyone = frozenset(f"cust-{i}" for i in range(4))
    assert seen[1:] == [everyone] * (len(seen) - 1)
