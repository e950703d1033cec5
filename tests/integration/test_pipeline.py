"""Two batches in flight at once (services/common/pipeline.py), on the real broker and
PostgreSQL: a customer's batches still see each other in order, and a batch that fails
with another in flight behind it loses and duplicates nothing."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg
import pytest
from asyncpg.exceptions import ConnectionDoesNotExistError

import services.common.consumer as consumer_module
import services.recovery.entrypoints.kafka as recovery_kafka
from services.common.clock import ManualClock
from services.common.pipeline import InFlight
from services.common.settings import CommonSettings
from services.recovery.application import BatchResult, RecoveryService
from services.recovery.settings import RecoverySettings
from tests.helpers import produce_events
from tests.integration.test_batch_failure import _pair
from tests.integration.test_relay import wait_for
from tests.replay_world import T0, charge, complaint, make_service, records


async def _in_flight(
    service: RecoveryService, events: list[dict[str, Any]], flight: InFlight, before: InFlight | None
) -> BatchResult:
    try:
        return await service.handle_records(records(events), flight.after(before))
    except BaseException:
        flight.failed = True
        raise
    finally:
        flight.done.set()


async def test_a_batch_behind_one_sharing_its_customer_sees_what_that_one_decided(
    pool: asyncpg.Pool, common_settings: CommonSettings
) -> None:
    """The guardrail (three automatic concessions in the window, then a person) holds across
    two batches in flight at once: the second reads the customer's history only after the
    first committed its three refunds (without the wait it would grant a fourth)."""
    service = make_service(pool, common_settings, ManualClock(T0))
    first = [charge("c-g", f"ch-{i}", "4.99", "purchase", "digital", T0) for i in range(4)]
    first += [complaint("c-g", f"cmp-{i}", "delivery_failed", T0, charge_id=f"ch-{i}") for i in range(3)]
    second = [complaint("c-g", "cmp-3", "delivery_failed", T0, charge_id="ch-3")]
    ahead, behind = InFlight(), InFlight()
    one, two = await asyncio.gather(
        _in_flight(service, first, ahead, None),
        _in_flight(service, second, behind, ahead),
    )
    assert (one.decisions, one.escalations) == (3, 0)
    assert (two.decisions, two.escalations) == (0, 1), "the fourth concession goes to a person"
    # It found its charge where the first batch had put it: it never waited for it.
    awaited = await pool.fetchval("SELECT count(*) FROM events WHERE event_type = 'recovery.case.charge_awaited.v1'")
    assert awaited == 0


@pytest.mark.parametrize("pipeline", [True, False], ids=["pipeline", "one-at-a-time"])
async def test_a_batch_that_fails_with_another_in_flight_behind_it_loses_and_duplicates_nothing(
    settings_env: dict[str, str], pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch, pipeline: bool
) -> None:
    env = {k.lower(): v for k, v in settings_env.items()}
    settings = RecoverySettings(**env, http_host="127.0.0.1", http_port=0, recovery_batch_max=40,  # type: ignore[arg-type]
                                recovery_top_up_ms=0, recovery_pipeline=pipeline)  # fmt: skip
    pairs = [_pair(i, "p") for i in range(300)]
    boot = settings.kafka_bootstrap_servers
    await produce_events(boot, settings.topic_charges, [p[0] for p in pairs])
    await produce_events(boot, settings.topic_complaints, [p[1] for p in pairs])

    calls = 0
    running = 0
    most = 0  # the most batches in the application at once
    failed_beside = -1  # batches started, from the failing one on, when it failed
    real_handle = RecoveryService.handle_records
    handed: dict[int, set[tuple[str, int, int]]] = {}  # what each call was given
    rewound: list[set[tuple[str, int, int]]] = []
    real_rewind = consumer_module.rewind
    seventh = asyncio.Event()  # the batch behind the failing one reached the application

    def rewind(message: Any, again: list[Any]) -> None:
        rewound.append({(r.topic, r.partition, r.offset) for r in again})
        real_rewind(message, again)

    async def handle_records(self: RecoveryService, batch: Any, *args: Any) -> Any:
        nonlocal calls, running, most, failed_beside
        calls += 1
        if calls == 7:
            seventh.set()
        handed[calls] = {(r.topic, r.partition, r.offset) for r in batch}
        running += 1
        most = max(most, running)
        try:
            if calls == 6:
                if pipeline:  # fail only once the batch behind is under way
                    await asyncio.wait_for(seventh.wait(), 60)
                failed_beside = calls - 5  # the batches started up to now from this one on
                raise ConnectionDoesNotExistError("the database went away (on purpose)")
            if calls == 7:  # the batch behind fails too: only the rewind brings it back
                raise ConnectionDoesNotExistError("and stayed away")
            return await real_handle(self, batch, *args)
        finally:
            running -= 1

    monkeypatch.setattr(RecoveryService, "handle_records", handle_records)
    monkeypatch.setattr(consumer_module, "rewind", rewind)
    app = recovery_kafka.build_app(settings)
    task = asyncio.create_task(app.run())
    try:
        await wait_for(lambda: _decided(pool, len(pairs)), 120, f"all {len(pairs)} complaints to be decided")
    finally:
        app.exit()
        # Not a test of the stop: a broker slow under load may outlast the wait.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)
    decisions = await pool.fetch(
        "SELECT data->>'complaint_id' AS c, count(*) AS n FROM events"
        " WHERE event_type = 'recovery.decision.made.v1' GROUP BY 1"
    )
    assert {r["c"]: r["n"] for r in decisions} == {p[1]["data"]["complaint_id"]: 1 for p in pairs}
    # Both failed batches were read again from their first record on.
    assert rewound
    assert rewound[0] >= handed[6] | (handed[7] if pipeline else set())
    if pipeline:
        assert most == 2, "two batches were in the application at once"
        assert failed_beside == 2, "the failing batch had the next one in flight behind it"
    else:
        assert most == 1
        assert failed_beside == 1


async def _decided(pool: asyncpg.Pool, want: int) -> bool:
    n: int = await pool.fetchval("SELECT count(*) FROM rm_cases WHERE status = 'decided'")
    return n >= want
