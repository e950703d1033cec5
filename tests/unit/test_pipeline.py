"""The pipeline's rule for two batches in flight: the one behind waits for the one ahead
only if they share a key, and gives up if that one failed (pure asyncio, no servers)."""

from __future__ import annotations

import asyncio

import pytest

from services.common.pipeline import BatchAbandoned, InFlight


async def _settles(coro: object, within_s: float = 0.05) -> bool:
    task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
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
