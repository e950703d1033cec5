"""Retention of finished emails on real PostgreSQL, with a manual clock: the emails go from
the notifier through the outbox to the delivery worker and back (no broker in between), and
NOTIFICATION_RETENTION_DAYS after each outcome its delivery row is deleted, while every
notification keeps its outcome for the case's apology status."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
from prometheus_client import REGISTRY

from services.common.clock import ManualClock
from services.common.contract import encode
from services.common.contract.events import EmailRequested
from services.common.records import InboundRecord
from services.notifier import retention
from services.notifier.application import NotifierService
from services.notifier.bootstrap import DeliveryRuntime
from services.notifier.domain import load_templates
from services.notifier.domain.errors import PermanentDeliveryError
from services.notifier.queries import apologies
from services.notifier.settings import NotifierSettings
from services.notifier.worker import DeliveryWorker
from tests.e2e.test_notifier import NOW, decision_event

DAYS = 30
REFUSED = "550 5.1.1 <luis@example.com>: mailbox unavailable"


class MailServer:
    """Accepts every email but those to refuse, which it refuses for good, quoting the address."""

    def __init__(self, refuse: set[str]) -> None:
        self.refuse = refuse

    async def send(self, req: EmailRequested, sender: str) -> None:
        if req.notification_id in self.refuse:
            raise PermanentDeliveryError(REFUSED, 550)


async def _from_outbox(pool: asyncpg.Pool, relay: str, about: list[str] | None = None) -> list[InboundRecord]:
    """What ``relay`` would publish (only what names one of the ids ``about``), as the records
    its consumers would read; taken out of the outbox."""
    rows = await pool.fetch("SELECT id, topic, key, value FROM outbox WHERE relay = $1 ORDER BY id", relay)
    rows = [r for r in rows if about is None or any(i.encode() in r["value"] for i in about)]
    await pool.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows])
    return [InboundRecord(r["topic"], 0, r["id"], r["key"], r["value"]) for r in rows]


async def _settled(worker: DeliveryWorker) -> None:
    for _ in range(500):
        if not worker.inflight:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the worker did not finish its emails")


def _pruned() -> float:
    return REGISTRY.get_sample_value("notifier_deliveries_pruned_total") or 0.0


async def _emails(pool: asyncpg.Pool, clock: ManualClock, n: int) -> list[str]:
    """``n`` decisions (each its own case) made into emails; returns their notification ids."""
    settings = NotifierSettings()
    notifier = NotifierService(pool, settings, load_templates(), clock)
    decisions = [decision_event() for _ in range(n)]
    decisions = [d.model_copy(update={"id": f"decision-{i}", "data": {**d.data, "case_id": f"case-{i}"}})
                 for i, d in enumerate(decisions)]  # fmt: skip
    await notifier.handle_records(
        [InboundRecord("recovery.decisions", 0, i, b"cust-1", encode(d)) for i, d in enumerate(decisions)]
    )
    rows = await pool.fetch("SELECT notification_id FROM notifications ORDER BY case_id")
    return [r[0] for r in rows]


async def _deliver(pool: asyncpg.Pool, clock: ManualClock, ids: list[str], refuse: set[str]) -> None:
    """The delivery worker sends the requests of ``ids`` now; the notifier records the outcomes."""
    settings = NotifierSettings()
    worker = DeliveryWorker(pool, settings, MailServer(refuse), clock)
    requests = await _from_outbox(pool, "notifier", ids)
    assert len(requests) == len(ids)
    await worker.handle_records(requests)
    await _settled(worker)
    notifier = NotifierService(pool, settings, load_templates(), clock)
    await notifier.handle_records(await _from_outbox(pool, "delivery"))


async def _notifications(pool: asyncpg.Pool) -> dict[str, tuple[str, str | None]]:
    return {r["notification_id"]: (r["status"], r["error"]) for r in await pool.fetch("SELECT * FROM notifications")}


async def test_delivery_rows_go_after_the_retention_and_the_outcomes_stay(pool: asyncpg.Pool) -> None:
    clock = ManualClock(NOW)
    first, failed, late, unsent = await _emails(pool, clock, 4)
    # ``unsent`` is held back: its request stays in the outbox, undelivered.
    await _deliver(pool, clock, [first, failed], refuse={failed})
    clock.advance(timedelta(days=10))
    await _deliver(pool, clock, [late], refuse={late})
    outcomes = await _notifications(pool)
    assert outcomes[first] == ("delivered", None)
    assert outcomes[failed][0] == "failed"
    assert "550 5.1.1" in str(outcomes[failed][1])
    assert outcomes[unsent] == ("requested", None)
    # The rendered email left the delivery rows with their outcomes.
    assert await pool.fetchval("SELECT count(*) FROM deliveries WHERE request IS NULL AND status <> 'sending'") == 3

    # Just inside the retention of the first two outcomes: nothing goes.
    clock.now = NOW + timedelta(days=DAYS) - timedelta(seconds=1)
    assert await retention.prune_deliveries(pool, clock() - timedelta(days=DAYS)) == 0

    # Past it, in batches of one: the first two delivery rows go.
    clock.now = NOW + timedelta(days=DAYS, seconds=1)
    assert await retention.prune_deliveries(pool, clock() - timedelta(days=DAYS), batch=1) == 2
    assert [r[0] for r in await pool.fetch("SELECT notification_id FROM deliveries")] == [late]
    # Every notification keeps its outcome, and the case's apology status reads as before.
    assert await _notifications(pool) == outcomes
    (apology,) = await apologies(pool, "case-1")
    assert (apology.status, apology.error, apology.updated_at) == ("failed", outcomes[failed][1], NOW)

    # Ten days later the late one goes too; a second run finds nothing more.
    clock.advance(timedelta(days=10))
    assert await retention.prune_deliveries(pool, clock() - timedelta(days=DAYS)) == 1
    assert await retention.prune_deliveries(pool, clock() - timedelta(days=DAYS)) == 0
    assert await _notifications(pool) == outcomes


async def test_an_email_in_flight_is_never_pruned(pool: asyncpg.Pool) -> None:
    clock = ManualClock(NOW)
    (nid,) = await _emails(pool, clock, 1)
    (request,) = await _from_outbox(pool, "notifier")
    assert request.value is not None
    await pool.execute(
        "INSERT INTO deliveries (notification_id, status, request, claim_id, claimed_until, updated_at)"
        " VALUES ($1, 'sending', $2::jsonb, gen_random_uuid(), now(), $3)",
        nid, request.value.decode(), NOW - timedelta(days=400),
    )  # fmt: skip
    assert await retention.prune_deliveries(pool, NOW) == 0
    assert await pool.fetchval("SELECT status FROM deliveries") == "sending"


async def test_the_delivery_worker_prunes_periodically_and_counts_the_rows(pool: asyncpg.Pool) -> None:
    clock = ManualClock(NOW)
    ids = await _emails(pool, clock, 2)
    await _deliver(pool, clock, ids, refuse={ids[1]})
    clock.advance(timedelta(days=DAYS + 1))
    runtime = DeliveryRuntime(NotifierSettings(notification_retention_days=DAYS), clock)
    runtime.pool = pool
    before = _pruned()
    (job,) = runtime.retention()
    task = asyncio.create_task(job)  # a round at once, then one an hour
    for _ in range(500):
        if _pruned() > before:
            break
        await asyncio.sleep(0.01)
    runtime.stop.set()
    await task
    assert _pruned() - before == 2
    assert await pool.fetchval("SELECT count(*) FROM deliveries") == 0
    assert await pool.fetchval("SELECT count(*) FROM notifications") == 2
    assert DeliveryRuntime(NotifierSettings(notification_retention_days=0), clock).retention() == []
    assert NotifierSettings().notification_retention_days == DAYS
