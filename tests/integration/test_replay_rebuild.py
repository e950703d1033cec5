"""`replay rebuild` on real PostgreSQL: the read models rebuilt from the event store equal the
ones the live run projected, row by row and column by column, also after an interruption,
and with the application deciding while the rebuild runs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from services.common.clock import ManualClock
from services.common.settings import CommonSettings
from services.recovery.application import REGISTRY
from services.recovery.audit import AUDIT_TYPE
from services.recovery.domain.policy import load_policy
from services.recovery.replay.rebuild import Progress, Rebuild, RebuildError, parse_projections
from services.recovery.replay.trusted import load_json
from tests.integration.test_relay import wait_for
from tests.replay_world import T0, charge, complaint, fire_timers, make_service, play, records, snapshot


class Interrupted(Exception):
    pass


async def _live(pool: asyncpg.Pool, settings: CommonSettings, n: int = 40) -> ManualClock:
    clock = ManualClock(T0)
    service = make_service(pool, settings, clock)
    await play(service, clock, "a", n)
    await fire_timers(service, clock, timedelta(minutes=30), timedelta(minutes=5))
    await play(service, clock, "b", n)
    await fire_timers(service, clock, timedelta(hours=11), timedelta(hours=1))
    await play(service, clock, "c", n // 2)  # leaves timers pending and cases waiting for charges
    return clock


def _rebuild(database_url: str, **kwargs: object) -> Rebuild:
    return Rebuild(lambda: asyncpg.connect(database_url), load_policy(), parse_projections(None), **kwargs)  # type: ignore[arg-type]


async def _tables(database_url: str) -> dict[str, list[tuple[Any, ...]]]:
    conn = await asyncpg.connect(database_url)
    try:
        return await snapshot(conn)
    finally:
        await conn.close()


def _assert_same(rebuilt: dict[str, list[tuple[Any, ...]]], live: dict[str, list[tuple[Any, ...]]]) -> None:
    for table, rows in live.items():
        assert rebuilt[table] == rows, table


# Pages smaller than a transaction, pages of a few transactions, one page for the whole store.
@pytest.mark.parametrize("page_size", [3, 97, 100_000])
async def test_a_rebuild_gives_the_live_read_models_row_by_row(
    pool: asyncpg.Pool, common_settings: CommonSettings, database_url: str, page_size: int
) -> None:
    await _live(pool, common_settings)
    live = await _tables(database_url)
    statuses = {r[4] for r in live["rm_cases"]}
    assert {"decided", "escalated"} <= statuses, statuses  # the run covers open and closed cases
    assert live["rm_timers"]
    assert live["rm_concessions"]
    assert any(r[8] > 0 for r in live["rm_charges"])  # some refunds landed

    pages: list[Progress] = []
    outcome = await _rebuild(database_url, page_size=page_size, on_page=pages.append).run()

    assert outcome.events == pages[-1].events > 0
    assert len(pages) > 5 if page_size < 100 else len(pages) == 1
    _assert_same(await _tables(database_url), live)
    assert outcome.rows["rm_cases"] == len(live["rm_cases"])
    async with pool.acquire() as conn:
        indexes = {r[0] for r in await conn.fetch("SELECT indexname FROM pg_indexes WHERE tablename LIKE 'rm_%'")}
        assert {"rm_cases_queue_idx", "rm_cases_pkey", "rm_timers_due_idx", "rm_charges_kind_idx"} <= indexes
        assert await conn.fetchval("SELECT to_regnamespace('rm_rebuild')") is None
        assert await conn.fetchval("SELECT count(*) FROM rm_checkpoints") == 0


async def test_an_interrupted_rebuild_resumes_from_its_checkpoint_and_gives_the_same_rows(
    pool: asyncpg.Pool, common_settings: CommonSettings, database_url: str
) -> None:
    await _live(pool, common_settings)
    live = await _tables(database_url)
    seen: list[Progress] = []

    def stop_after_three(p: Progress) -> None:
        seen.append(p)
        if len(seen) == 3:
            raise Interrupted

    with pytest.raises(Interrupted):
        await _rebuild(database_url, page_size=50, on_page=stop_after_three).run()
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT position FROM rm_checkpoints") == seen[-1].position
    # The live tables are untouched meanwhile, and another projection set must not start over it.
    assert await _tables(database_url) == live
    with pytest.raises(RebuildError, match="interrupted rebuild"):
        await Rebuild(lambda: asyncpg.connect(database_url), load_policy(), parse_projections(["charges"])).run()

    resumed = await _rebuild(database_url, page_size=50).run()

    assert resumed.resumed_from == seen[-1].position
    _assert_same(await _tables(database_url), live)


async def test_cases_evicted_from_memory_are_folded_again_from_their_streams(
    pool: asyncpg.Pool, common_settings: CommonSettings, database_url: str
) -> None:
    await _live(pool, common_settings, n=20)
    live = await _tables(database_url)
    await _rebuild(database_url, page_size=30, max_cases_in_memory=3).run()
    _assert_same(await _tables(database_url), live)


async def test_the_service_keeps_deciding_during_a_rebuild_and_the_swap_keeps_its_work(
    pool: asyncpg.Pool, common_settings: CommonSettings, database_url: str
) -> None:
    clock = await _live(pool, common_settings, n=20)
    service = make_service(pool, common_settings, clock)
    playing: asyncio.Task[None] | None = None

    def start_playing(p: Progress) -> None:
        nonlocal playing
        if playing is None:
            playing = asyncio.get_running_loop().create_task(play(service, clock, "during", 21))

    rebuild = _rebuild(database_url, page_size=40, on_page=start_playing)
    await rebuild.run()
    assert playing is not None
    await playing  # decisions went on (some may have waited for the swap's locks)
    after = await _tables(database_url)
    assert any(r[2].startswith("during-") for r in after["rm_cases"])
    # Whatever was appended during the rebuild is in the swapped-in tables: a second rebuild,
    # with nothing running, changes nothing.
    await _rebuild(database_url, page_size=500).run()
    _assert_same(await _tables(database_url), after)
    # and the application still works on the swapped-in tables
    await play(service, clock, "after", 7)


class _SwapWithADecision(Rebuild):
    """A rebuild that, holding the swap's locks, starts a decision and moves the tables only
    once that decision's transaction waits for them."""

    def __init__(self, database_url: str, decide: Callable[[], Awaitable[Any]], pool: asyncpg.Pool) -> None:
        super().__init__(lambda: asyncpg.connect(database_url), load_policy(), parse_projections(None), page_size=500)
        self._decide, self._pool = decide, pool
        self.deciding: asyncio.Task[Any] | None = None

    async def _move(self, conn: asyncpg.Connection, table: str) -> None:
        if self.deciding is None:
            self.deciding = asyncio.ensure_future(self._decide())
            await wait_for(lambda: _waits_for_a_lock(self._pool, conn), 30, "the decision to wait for the swap's locks")
        await super()._move(conn, table)


async def _waits_for_a_lock(pool: asyncpg.Pool, rebuilding: asyncpg.Connection) -> bool:
    pid = rebuilding.get_server_pid()
    n: int = await pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> $1"
        " AND $1 = ANY(pg_blocking_pids(pid))",
        pid,
    )
    return n > 0


async def test_a_decision_that_lands_during_the_swap_is_in_the_swapped_in_tables(
    pool: asyncpg.Pool, common_settings: CommonSettings, database_url: str
) -> None:
    """The swap holds the live tables and the append lock; a decision taken meanwhile waits
    for them, then appends and projects into the tables just moved in: not into the dropped
    ones, and not appended behind the rebuild's catch-up without its rows."""
    clock = await _live(pool, common_settings, n=14)
    service = make_service(pool, common_settings, clock)
    batch = records([
        charge("swap-cust", "swap-ch", "4.99", "purchase", "digital", clock()),
        complaint("swap-cust", "swap-cmp", "delivery_failed", clock(), charge_id="swap-ch"),
    ])  # fmt: skip
    rebuild = _SwapWithADecision(database_url, lambda: service.handle_records(batch), pool)
    await rebuild.run()
    assert rebuild.deciding is not None
    result = await asyncio.wait_for(rebuild.deciding, 30)
    assert result.decisions == 1
    after = await _tables(database_url)
    swapped = [r for r in after["rm_cases"] if r[2] == "swap-cmp"]
    assert len(swapped) == 1, "the decision's case is in the swapped-in table"
    assert swapped[0][4] == "decided"
    # A second rebuild, at rest, gives the same tables: the decision is in them all.
    await _rebuild(database_url, page_size=500).run()
    _assert_same(await _tables(database_url), after)


async def test_trusted_loading_gives_the_models_validation_gives_for_every_stored_event(
    pool: asyncpg.Pool, common_settings: CommonSettings
) -> None:
    await _live(pool, common_settings, n=21)
    # Every event of a model (the audit trail's records are plain data, read by its queries).
    rows = await pool.fetch("SELECT event_type, data FROM events WHERE event_type <> $1", AUDIT_TYPE)
    assert len({r[0] for r in rows}) >= 10
    for event_type, data in rows:
        model = REGISTRY[event_type]
        trusted, validated = load_json(model, data), model.model_validate_json(data)
        assert trusted == validated, event_type
        assert trusted.model_dump(mode="json") == validated.model_dump(mode="json")
        assert trusted.model_fields_set == validated.model_fields_set


async def test_a_rebuild_of_one_projection_replaces_only_its_tables(
    pool: asyncpg.Pool, common_settings: CommonSettings, database_url: str
) -> None:
    await _live(pool, common_settings, n=14)
    live = await _tables(database_url)
    async with pool.acquire() as conn:
        cases_oid = await conn.fetchval("SELECT 'rm_cases'::regclass::oid")
        charges_oid = await conn.fetchval("SELECT 'rm_charges'::regclass::oid")
    outcome = await Rebuild(lambda: asyncpg.connect(database_url), load_policy(), parse_projections(["charges"])).run()
    assert list(outcome.rows) == ["rm_charges", "rm_charge_amounts", "rm_early_refunds"]
    _assert_same(await _tables(database_url), live)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT 'rm_cases'::regclass::oid") == cases_oid
        assert await conn.fetchval("SELECT 'rm_charges'::regclass::oid") != charges_oid
