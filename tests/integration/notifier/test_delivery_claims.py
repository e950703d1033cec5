"""The delivery worker claims an email before sending it: a batch returns at once, a
redelivery or a second worker never sends it again, and a claim whose worker died (or
stopped) is taken over and sent once. Real PostgreSQL; the mail server is a fake sender."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Protocol

import asyncpg
import pytest

from services.common.clock import ManualClock
from services.common.contract import CloudEvent, encode, new_event
from services.common.contract.events import EmailRequested
from services.common.records import InboundRecord
from services.notifier.domain.compose import compose
from services.notifier.domain.errors import TemporaryDeliveryError
from services.notifier.domain.ports import EmailSender
from services.notifier.domain.templates import load_templates
from services.notifier.settings import NotifierSettings
from services.notifier.worker import DeliveryWorker
from tests.unit.notifier.factories import DECIDED_AT, decision, envelope

LEASE_S = 0.6
TOPIC = "notifications.email"
DELIVERED = "notification.email.delivered.v1"


class GatedMailServer(EmailSender):
    """Defers (451) every attempt until ``opened``, then accepts; keeps what it accepted."""

    def __init__(self, *, opened: bool = False) -> None:
        self.opened = asyncio.Event()
        if opened:
            self.opened.set()
        self.attempts = 0
        self.accepted: list[str] = []

    async def send(self, req: EmailRequested, sender: str) -> None:
        self.attempts += 1
        if not self.opened.is_set():
            raise TemporaryDeliveryError("451 try again later", 451)
        self.accepted.append(req.notification_id)


def request(n: int = 0) -> CloudEvent:
    data = decision()
    composed = compose(envelope(data), data, load_templates())
    assert composed is not None
    req = composed.model_copy(update={"notification_id": f"{composed.notification_id}-{n}"})
    return new_event(req, source="notifier-service", time=DECIDED_AT, subject="cust-0042",
                     correlation_id="cmp-1", causation_id="dec-1")  # fmt: skip


def record(event: CloudEvent, offset: int = 0) -> InboundRecord:
    return InboundRecord(TOPIC, 0, offset, b"cust-0042", encode(event))


def nid(event: CloudEvent) -> str:
    return str(event.data["notification_id"])


class Workers(Protocol):
    def __call__(self, sender: EmailSender, *, lease_s: float = LEASE_S, connections: int = 16) -> DeliveryWorker: ...


@pytest.fixture
async def workers(pool: asyncpg.Pool) -> AsyncIterator[Workers]:
    """Makes delivery workers on the test's database (retries every 10-20 ms, a short lease);
    stops the ones still sending at the end."""
    made: list[DeliveryWorker] = []

    def make(sender: EmailSender, *, lease_s: float = LEASE_S, connections: int = 16) -> DeliveryWorker:
        settings = NotifierSettings(delivery_max_attempts=100_000, delivery_base_delay_s=0.01,
                                    delivery_max_delay_s=0.02, delivery_claim_lease_s=lease_s,
                                    delivery_max_connections=connections)  # fmt: skip
        worker = DeliveryWorker(pool, settings, sender, ManualClock(DECIDED_AT))
        made.append(worker)
        return worker

    yield make
    for worker in made:
        for f in list(worker.inflight.values()):
            f.task.cancel()
        await asyncio.gather(*(f.task for f in worker.inflight.values()), return_exceptions=True)


async def eventually(check: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await _value(check()):
        assert time.monotonic() < deadline, "not within the time allowed"
        await asyncio.sleep(0.02)


async def _value(result: bool | Awaitable[bool]) -> bool:
    return result if isinstance(result, bool) else await result


def count_sweeps(worker: DeliveryWorker) -> list[int]:
    """Counts the worker's finished sweeps (in a one-item list the test reads)."""
    done = [0]
    real = worker.sweep

    async def sweep() -> int:
        try:
            return await real()
        finally:
            done[0] += 1

    worker.sweep = sweep  # type: ignore[method-assign]
    return done


def count_arrivals(worker: DeliveryWorker) -> list[int]:
    """Counts the attempts that asked the worker for a turn (before they wait for one)."""
    arrived = [0]
    turns = worker._turns

    class Arrivals(EmailSender):
        async def send(self, req: EmailRequested, sender: str) -> None:
            arrived[0] += 1
            await turns.send(req, sender)

    worker._turns = Arrivals()  # type: ignore[assignment]
    return arrived


async def status(pool: asyncpg.Pool, notification_id: str) -> str | None:
    value: str | None = await pool.fetchval("SELECT status FROM deliveries WHERE notification_id = $1", notification_id)
    return value


async def outcomes(pool: asyncpg.Pool) -> list[dict[str, object]]:
    rows = await pool.fetch("SELECT value FROM outbox WHERE relay = 'delivery' AND topic = $1 ORDER BY id", TOPIC)
    return [json.loads(r["value"]) for r in rows]


async def delivered(pool: asyncpg.Pool, event: CloudEvent) -> None:
    async def done() -> bool:
        return await status(pool, nid(event)) == "delivered"

    await eventually(done)


async def insert_stale_claim(pool: asyncpg.Pool, event: CloudEvent) -> None:
    """A claim as a worker killed mid-send leaves it: sending, its lease run out."""
    await pool.execute(
        "INSERT INTO deliveries (notification_id, status, request, claim_id, claimed_until, updated_at)"
        " VALUES ($1, 'sending', $2::jsonb, gen_random_uuid(), now() - interval '5 seconds', now())",
        nid(event), encode(event).decode(),
    )  # fmt: skip


async def test_a_batch_returns_while_its_email_is_still_retried_and_the_outcome_comes_later_once(
    pool: asyncpg.Pool, workers: Workers
) -> None:
    server = GatedMailServer()
    worker = workers(server)
    event = request()

    claimed = await asyncio.wait_for(worker.handle_records([record(event)]), 2)

    assert claimed == 1  # returned: the offsets can be committed while the email is retried
    await eventually(lambda: server.attempts >= 3)
    assert await status(pool, nid(event)) == "sending"
    assert await outcomes(pool) == []
    server.opened.set()
    await delivered(pool, event)
    await eventually(lambda: not worker.inflight)  # its sending is over: nothing more can go
    assert server.accepted == [nid(event)]
    sent = await outcomes(pool)
    assert [(e["type"], e["data"]["notification_id"]) for e in sent] == [(DELIVERED, nid(event))]  # type: ignore[index]
    # The id derived from the notification and its stream, pinned: a redelivery makes the same.
    assert nid(event) == "9baf685d-44fd-5147-b9cb-011ce487c2be-0"
    assert sent[0]["id"] == "74244104-13a3-550d-9f4a-52a639b91a7b"
    assert (sent[0]["subject"], sent[0]["causationid"], sent[0]["correlationid"]) == ("cust-0042", event.id, "cmp-1")
    row = await pool.fetchrow("SELECT attempts, request, claim_id, claimed_until FROM deliveries")
    assert row is not None
    assert row["attempts"] == server.attempts
    assert (row["request"], row["claim_id"], row["claimed_until"]) == (None, None, None)  # no personal data kept


async def test_a_request_redelivered_while_its_email_is_in_flight_is_not_sent_again(
    pool: asyncpg.Pool, workers: Workers
) -> None:
    server = GatedMailServer()
    first, second = workers(server), workers(server)  # the partition moved to another worker
    event = request()

    assert await asyncio.wait_for(first.handle_records([record(event)]), 2) == 1
    await eventually(lambda: server.attempts >= 1)
    assert await second.handle_records([record(event)]) == 0
    assert await first.handle_records([record(event)]) == 0
    server.opened.set()
    await delivered(pool, event)
    await eventually(lambda: not first.inflight and not second.inflight)  # nothing more can go

    assert server.accepted == [nid(event)]
    assert len(await outcomes(pool)) == 1
    assert await second.handle_records([record(event)]) == 0  # and after it: nothing either


async def test_a_claim_whose_worker_died_is_taken_over_and_sent_once(pool: asyncpg.Pool, workers: Workers) -> None:
    server = GatedMailServer(opened=True)
    worker = workers(server)
    stale, live = request(1), request(2)
    await insert_stale_claim(pool, stale)
    await pool.execute(
        "INSERT INTO deliveries (notification_id, status, request, claim_id, claimed_until, updated_at)"
        " VALUES ($1, 'sending', $2::jsonb, gen_random_uuid(), now() + interval '1 hour', now())",
        nid(live), encode(live).decode(),
    )  # fmt: skip
    sweeps = count_sweeps(worker)
    stop = asyncio.Event()
    loop = asyncio.create_task(worker.run(stop))
    try:
        await delivered(pool, stale)
        after = sweeps[0]
        await eventually(lambda: sweeps[0] >= after + 2)  # a whole sweep after the delivery
        await eventually(lambda: not worker.inflight)
    finally:
        stop.set()
        await loop

    assert server.accepted == [nid(stale)]  # the claim another worker still holds is left alone
    sent = await outcomes(pool)
    assert [(e["type"], e["data"]["notification_id"]) for e in sent] == [(DELIVERED, nid(stale))]  # type: ignore[index]
    assert sent[0]["causationid"] == stale.id


async def test_a_delivery_retried_longer_than_its_lease_is_renewed_and_not_taken_over(
    pool: asyncpg.Pool, workers: Workers
) -> None:
    """Retries go on for several leases: the worker sending extends its lease each third of
    one, and another worker sweeping all along never takes the claim over."""
    mine, theirs = GatedMailServer(), GatedMailServer(opened=True)
    sending, sweeping = workers(mine), workers(theirs)
    sweeps = count_sweeps(sweeping)
    event = request()
    assert await asyncio.wait_for(sending.handle_records([record(event)]), 2) == 1
    claim = await pool.fetchrow("SELECT claim_id, claimed_until FROM deliveries")
    assert claim is not None
    stop = asyncio.Event()
    loops = [asyncio.create_task(w.run(stop)) for w in (sending, sweeping)]
    try:
        # Three leases later (by the database's clock), the lease was extended past them...
        async def outlasted() -> bool:
            until = await pool.fetchval("SELECT claimed_until FROM deliveries")
            return bool(until >= claim["claimed_until"] + timedelta(seconds=3 * LEASE_S))

        await eventually(outlasted)
        # ...and the other worker swept since the first lease ran out, and took nothing.
        swept = sweeps[0]
        await eventually(lambda: sweeps[0] >= swept + 2)
        assert await pool.fetchval("SELECT claim_id FROM deliveries") == claim["claim_id"]
        assert (theirs.attempts, sweeping.inflight) == (0, {})
        mine.opened.set()
        await delivered(pool, event)
    finally:
        stop.set()
        await asyncio.gather(*loops)
    assert (mine.accepted, theirs.accepted) == ([nid(event)], [])
    assert mine.attempts > 3
    assert len(await outcomes(pool)) == 1


async def test_two_workers_racing_on_stale_claims_send_each_once(pool: asyncpg.Pool, workers: Workers) -> None:
    server = GatedMailServer(opened=True)
    events = [request(i) for i in range(20)]
    for event in events:
        await insert_stale_claim(pool, event)
    # A long lease: no claim may run out while the race is on (nothing renews them here).
    first, second = workers(server, lease_s=60), workers(server, lease_s=60)

    # Another worker is in the middle of taking them over (its rows locked, not committed):
    # a sweep neither waits for it nor takes them (SKIP LOCKED).
    async with pool.acquire() as other, other.transaction():
        await other.execute("SELECT 1 FROM deliveries FOR UPDATE")
        assert await asyncio.wait_for(first.sweep(), 2) == 0
    # ... and it died before committing: now the two race for them.
    taken = await asyncio.gather(first.sweep(), second.sweep(), first.sweep(), second.sweep())

    assert sum(taken) == len(events)
    for event in events:
        await delivered(pool, event)
    assert sorted(server.accepted) == sorted(nid(e) for e in events)
    assert len(await outcomes(pool)) == len(events)


async def test_a_clean_stop_releases_its_claims_for_the_next_worker(pool: asyncpg.Pool, workers: Workers) -> None:
    deferring = GatedMailServer()
    worker = workers(deferring)
    event = request()
    assert await asyncio.wait_for(worker.handle_records([record(event)]), 2) == 1
    await eventually(lambda: deferring.attempts >= 2)

    await asyncio.wait_for(worker.shutdown(grace_s=5), 5)

    assert worker.inflight == {}
    released = await pool.fetchval("SELECT claimed_until <= now() FROM deliveries WHERE status = 'sending'")
    assert released is True
    accepting = GatedMailServer(opened=True)
    assert await workers(accepting).sweep() == 1  # at once, not a lease later
    await delivered(pool, event)
    assert (deferring.accepted, accepting.accepted) == ([], [nid(event)])
    assert len(await outcomes(pool)) == 1


class SlowMailServer(EmailSender):
    """Holds every attempt until ``done``; counts the attempts under way at once."""

    def __init__(self) -> None:
        self.done = asyncio.Event()
        self.started = 0
        self.now = 0
        self.most = 0
        self.accepted: list[str] = []

    async def send(self, req: EmailRequested, sender: str) -> None:
        self.started += 1
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await self.done.wait()
        finally:
            self.now -= 1
        self.accepted.append(req.notification_id)


async def test_a_worker_makes_at_most_its_connections_limit_of_attempts_at_once(
    pool: asyncpg.Pool, workers: Workers
) -> None:
    """DELIVERY_MAX_CONNECTIONS: a backlog's emails wait for a turn instead of all opening a
    connection; every one is still sent, once; one still waiting when the worker stops is
    not sent, and its claim is released like the others."""
    server = SlowMailServer()
    worker = workers(server, connections=3)
    arrived = count_arrivals(worker)
    events = [request(n) for n in range(10)]
    assert await asyncio.wait_for(worker.handle_records([record(e, i) for i, e in enumerate(events)]), 2) == 10
    # All ten asked for a turn; each went on up to its first wait: a turn or the server.
    await eventually(lambda: arrived[0] == 10)
    assert (server.started, server.most) == (3, 3)  # the seven others wait for a turn
    server.done.set()
    for event in events:
        await delivered(pool, event)
    assert server.most == 3
    assert sorted(server.accepted) == sorted(nid(e) for e in events)

    held = SlowMailServer()
    stopping = workers(held, connections=2)
    more = [request(n) for n in range(10, 15)]
    assert await stopping.handle_records([record(e, i) for i, e in enumerate(more)]) == 5
    await eventually(lambda: held.now == 2)
    stop = asyncio.create_task(stopping.shutdown(grace_s=5))
    await eventually(lambda: stopping._stopping.is_set())  # the stop is under way
    held.done.set()  # the two attempts under way end during the grace period: their turns free up
    await asyncio.wait_for(stop, 5)
    assert held.started == 2  # none of the three waiting began after the stop
    assert len(held.accepted) == 2
    assert set(held.accepted) <= {nid(e) for e in more}
    rows = await pool.fetch("SELECT status, claimed_until <= now() AS released FROM deliveries"
                            " WHERE notification_id = ANY($1::text[])", [nid(e) for e in more])  # fmt: skip
    assert sorted((r["status"], r["released"]) for r in rows) == [("delivered", None)] * 2 + [("sending", True)] * 3


async def test_a_worker_that_lost_its_claim_stops_sending_it(pool: asyncpg.Pool, workers: Workers) -> None:
    server = GatedMailServer()
    slow, other = workers(server), workers(server)  # `slow` could not renew in time (a long pause)
    event = request()
    assert await asyncio.wait_for(slow.handle_records([record(event)]), 2) == 1
    await pool.execute("UPDATE deliveries SET claimed_until = now() - interval '1 second'")
    assert await other.sweep() == 1

    await slow.renew()

    await eventually(lambda: slow.inflight == {})  # it stopped sending
    server.opened.set()
    await delivered(pool, event)
    await eventually(lambda: not other.inflight)
    assert server.accepted == [nid(event)]
    assert len(await outcomes(pool)) == 1
