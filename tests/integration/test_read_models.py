"""The recovery read models as the real application writes them (real PostgreSQL)."""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal

import asyncpg

from services.common.clock import ManualClock
from services.common.contract.events import ChargePosted
from services.common.migrate import discover
from services.common.settings import CommonSettings
from services.recovery.adapters import readmodels
from services.recovery.application import RecoveryService
from services.recovery.domain.policy import load_policy
from services.recovery.domain.roster import load_roster
from tests.helpers import VOUCHERS, cloudevent
from tests.integration.test_charge_race import CHARGE, COMPLAINT, NOW, _record
from tests.replay_world import charge, make_service, records, refund


async def test_a_reopened_case_shows_its_fresh_sla_deadline_in_the_read_model(pool: asyncpg.Pool) -> None:
    """A repeat contact that reopens a decided case gives it a fresh SLA; rm_cases shows it."""
    clock = ManualClock(NOW)
    service = RecoveryService(pool, CommonSettings(), load_policy(), load_roster(), clock, vouchers=VOUCHERS)
    await service.handle_records([CHARGE, COMPLAINT])
    later = NOW + timedelta(days=2)
    for n in (2, 3):  # the third contact reaches the repeat-contact threshold
        filed = later + timedelta(hours=n)
        clock.now = filed
        repeat = cloudevent("complaint.filed.v1", {
            "complaint_id": f"cmp-race-{n}",
            "customer": {"id": "c-race", "name": "Luis", "email": "luis@example.com", "locale": "es-CO"},
            "channel": "web", "category": "delivery_failed", "charge_id": "ch-race",
            "description": "Still not working.", "filed_at": filed.isoformat(),
        }, "c-race", time_=filed)  # fmt: skip
        await service.handle_records([_record("customer.complaints", repeat)])
    row = await pool.fetchrow("SELECT status, sla_deadline, due_by FROM rm_cases")
    assert row["status"] == "escalated"
    assert row["sla_deadline"] == row["due_by"] == later + timedelta(hours=3) + load_policy().sla


async def test_a_case_s_timers_and_charge_wait_are_replaced_as_it_moves_on(pool: asyncpg.Pool) -> None:
    """Waiting for its charge the case has its timers and its wait; once the charge came and
    the case was decided, neither is left (and an unrelated case's rows are untouched)."""
    service = RecoveryService(pool, CommonSettings(), load_policy(), load_roster(), ManualClock(NOW), vouchers=VOUCHERS)
    other = cloudevent("complaint.filed.v1", {
        "complaint_id": "cmp-other", "customer": {"id": "c-other", "name": "Ana", "email": "ana@example.com",
        "locale": "es-CO"}, "channel": "web", "category": "delivery_failed", "charge_id": "ch-other",
        "description": "Never arrived.", "filed_at": NOW.isoformat(),
    }, "c-other", time_=NOW)  # fmt: skip
    await service.handle_records([COMPLAINT, _record("customer.complaints", other)])
    timers = await pool.fetch("SELECT case_id, kind FROM rm_timers ORDER BY case_id, kind")
    assert len({r["case_id"] for r in timers}) == 2  # both cases wait, each with its timers
    assert await pool.fetchval("SELECT count(*) FROM rm_awaiting_charge") == 2
    waiting = set(map(tuple, timers))

    await service.handle_records([CHARGE])  # the first case's charge: it is decided now
    decided = await pool.fetchval("SELECT case_id FROM rm_cases WHERE status = 'decided'")
    assert decided is not None
    left = {tuple(r) for r in await pool.fetch("SELECT case_id, kind FROM rm_timers")}
    assert left == {t for t in waiting if t[0] != decided}  # the other case's timers, as they were
    assert await pool.fetchval("SELECT array_agg(charge_id) FROM rm_awaiting_charge") == ["ch-other"]


async def test_a_concession_is_recorded_with_its_case_and_counts_in_the_customer_s_history(
    pool: asyncpg.Pool,
) -> None:
    """The batch's concessions and its cases are written by one statement: both land."""
    service = RecoveryService(pool, CommonSettings(), load_policy(), load_roster(), ManualClock(NOW), vouchers=VOUCHERS)
    await service.handle_records([CHARGE, COMPLAINT])
    case = await pool.fetchrow("SELECT case_id, outcome FROM rm_cases")
    assert case["outcome"] == "resolved"  # a remedy granted: a concession
    rows = await pool.fetch("SELECT customer_id, case_id, decided_at FROM rm_concessions")
    assert [tuple(r) for r in rows] == [("c-race", case["case_id"], NOW)]
    async with pool.acquire() as conn:
        history = (await readmodels.customer_histories(conn, ["c-race"], NOW - timedelta(days=1)))["c-race"]
    assert history.concession_times == (NOW,)


async def test_a_batch_s_customer_lookups_stay_index_probes_as_young_tables_grow(pool: asyncpg.Pool) -> None:
    """A new database taking its first load has no statistics yet, and a long-lived
    connection keeps the plan it made (generic, after a few runs) while the table grows. The
    lookups by a batch's customers are index probes in that plan too, not a scan comparing
    every row with every key (which ``customer_id = ANY($1)`` planned at 1,000 rows kept)."""
    fill = (
        "INSERT INTO rm_charges (charge_id, customer_id, kind, amount, currency, posted_at)"
        " SELECT 'ch-' || g, 'c-' || g, 'fee', 10, 'USD', now() FROM generate_series({lo}, {hi}) g;"
        " INSERT INTO rm_concessions SELECT 'c-' || g, 'case-' || g, now() FROM generate_series({lo}, {hi}) g"
    )
    keys = "'{" + ",".join(f"c-{i}" for i in range(1, 501)) + "}'"
    statements = (f"charges({keys})", f"histories({keys}, now() - interval '30 days')")
    async with pool.acquire() as conn:
        # Session copies with the same indexes, never analysed (autovacuum skips temp tables);
        # they shadow the real tables for this connection.
        for table in ("rm_charges", "rm_concessions"):
            await conn.execute(f"CREATE TEMP TABLE {table} (LIKE public.{table} INCLUDING ALL)")
        for lo, hi in ((1, 1000), (1001, 20000)):
            await conn.execute(fill.format(lo=lo, hi=hi))
            if lo == 1:  # planned while the tables are small, then kept as they grow
                await conn.execute(
                    "SET plan_cache_mode = force_generic_plan;"
                    f" PREPARE charges(text[]) AS {readmodels.CUSTOMER_CHARGES};"
                    f" PREPARE histories(text[], timestamptz) AS {readmodels.CUSTOMER_HISTORIES}"
                )  # fmt: skip
            for statement in statements:
                plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN EXECUTE {statement}"))
                assert "Seq Scan on rm_" not in plan, plan
                assert "Index" in plan, plan
        assert len(await conn.fetch(f"EXECUTE charges({keys})")) == 500
        assert len(await conn.fetch(f"EXECUTE histories({keys}, now() - interval '30 days')")) == 500
        await conn.execute("DEALLOCATE ALL; DISCARD TEMP")


async def test_the_usual_amount_across_customers_is_the_median_of_every_charge_before(pool: asyncpg.Pool) -> None:
    """The cross-customer usual amount (charge-anomaly) comes from counts per amount, of which
    a batch reads only the window its medians can reach; each of the batch's new charges in
    turn gets exactly percentile_disc(0.5) over the charges recorded before and those ahead
    of it in the batch: at odd and even counts, with repeated amounts, per kind and currency,
    and a charge projected twice counts once."""
    rng = random.Random(7)
    policy = load_policy()
    now = NOW

    def charge(i: int, kind: str, currency: str, amount: str) -> ChargePosted:
        return ChargePosted(charge_id=f"ch-{kind}-{currency}-{i}", customer_id=f"c-{i}", amount=amount,
                            currency=currency, kind=kind, posted_at=now)  # fmt: skip

    def percentile_disc(amounts: list[Decimal]) -> Decimal | None:
        return sorted(amounts)[(len(amounts) + 1) // 2 - 1] if amounts else None

    amounts = {"USD": ["4.99", "5.00", "12.50", "0.99", "250.00"], "COP": ["2700", "9900", "150000"]}
    recorded: dict[tuple[str, str], list[Decimal]] = {("fee", "USD"): [], ("shipping", "USD"): [], ("fee", "COP"): []}
    async with pool.acquire() as conn:
        for step in range(1, 41):
            batch = []
            for (kind, currency), before in recorded.items():
                for _ in range(rng.choice([0, 1, 2])):
                    batch.append(charge(len(before) + 1, kind, currency, rng.choice(amounts[currency])))
                    before.append(batch[-1].amount)
            again = batch[:1]  # a redelivered charge: ON CONFLICT, and not counted again
            async with conn.transaction():
                await readmodels.project(conn, [(c, now) for c in batch + again], [], {}, policy, now)
            probes = [
                charge(10_000 * step + n, kind, currency, rng.choice(amounts[currency]))
                for (kind, currency) in recorded
                for n in range(rng.choice([1, 2, 5]))
            ]
            rng.shuffle(probes)
            usual = await readmodels.usual_amounts(conn, probes)
            ahead: dict[tuple[str, str], list[Decimal]] = {pair: [] for pair in recorded}
            for probe in probes:
                pair = (probe.kind, probe.currency)
                expected = percentile_disc(recorded[pair] + ahead[pair])
                assert usual.assess(probe)[1] == expected, (step, pair, len(ahead[pair]))
                ahead[pair].append(probe.amount)
        assert await conn.fetchval("SELECT sum(charges) FROM rm_charge_amounts") == sum(map(len, recorded.values()))


async def test_a_refund_that_comes_before_its_charge_is_in_the_charge_history(pool: asyncpg.Pool) -> None:
    """Charges and refunds come on one topic but from billing in any order: a refund handled
    before its charge waits for it and is added to the charge's row when the charge comes.
    Migration 0102 recovers, from the event store, what the older projection had lost."""
    service = make_service(pool, CommonSettings(), ManualClock(NOW))
    for batch in (
        [refund("c-1", "ch-a", "1.00", NOW)],  # before its charge
        [charge("c-1", "ch-a", "9.00", "fee", None, NOW), refund("c-1", "ch-b", "4.00", NOW)],
        [refund("c-1", "ch-a", "2.00", NOW), refund("c-1", "ch-a", "0.50", NOW)],  # after it, two at once
    ):
        await service.handle_records(records(batch))

    async def state() -> tuple[object, object]:
        return (
            await pool.fetchval("SELECT refunded_amount FROM rm_charges WHERE charge_id = 'ch-a'"),
            [tuple(r) for r in await pool.fetch("SELECT charge_id, amount FROM rm_early_refunds")],
        )

    assert await state() == (Decimal("3.50"), [("ch-b", Decimal("4.00"))])  # ch-b has not come yet

    # A database projected before 0102: ch-a's early refund lost, nothing set aside for ch-b.
    await pool.execute("UPDATE rm_charges SET refunded_amount = 2.50; DELETE FROM rm_early_refunds")
    (migration,) = [m for m in discover() if m.version == 102]
    await pool.execute(migration.sql[migration.sql.index("-- What was lost so far") :])
    assert await state() == (Decimal("3.50"), [("ch-b", Decimal("4.00"))])

    await service.handle_records(records([charge("c-1", "ch-b", "4.00", "fee", None, NOW)]))
    assert await pool.fetchval("SELECT refunded_amount FROM rm_charges WHERE charge_id = 'ch-b'") == Decimal("4.00")
    assert await pool.fetchval("SELECT count(*) FROM rm_early_refunds") == 0
