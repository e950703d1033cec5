"""Poison isolation in every consumer, in-process on the real broker and PostgreSQL: a
message that makes handling fail is dead-lettered as unprocessable and everything else is
handled once; a transient failure is retried and dead-letters nothing.

The poison is the service's real batch method made to raise for one chosen message
(tests/poison.py); the transient failures are real: the service's own database connection
terminated in the middle of its transaction, and lost races on the event store."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from aiosmtpd.controller import Controller
from faststream import FastStream

import services.recovery.adapters.postgres as recovery_postgres
import services.recovery.entrypoints.kafka as recovery_kafka
from services.common.clock import system_clock
from services.common.contract import encode
from services.common.devstack import free_port
from services.common.eventstore import ConcurrencyError
from services.common.eventstore.postgres import append_new
from services.common.isolate import Quarantine, position
from services.common.records import InboundRecord, derived_event_id
from services.notifier import metrics as notifier_metrics
from services.notifier.adapters import claims
from services.notifier.application import NotifierService
from services.notifier.entrypoints import delivery as delivery_entry
from services.notifier.entrypoints import kafka as notifier_kafka
from services.notifier.settings import NotifierSettings
from services.notifier.worker import DeliveryWorker
from services.recovery import metrics as recovery_metrics
from services.recovery.application import RecoveryService
from services.recovery.settings import RecoverySettings
from tests.e2e.test_notifier_resilience import decision_event
from tests.helpers import SmtpSink, produce, produce_events, read_to_end
from tests.integration.notifier.test_delivery_claims import request
from tests.integration.test_batch_failure import _pair
from tests.integration.test_relay import wait_for
from tests.poison import POISON_TEXT, poisoned

DEAD = "recovery.deadletter.v1"
DECIDED_CASES = "SELECT count(*) FROM rm_cases WHERE status = 'decided'"
FAST = {"http_host": "127.0.0.1", "http_port": 0, "retry_base_s": 0.01, "retry_max_s": 0.05, "relay_poll_s": 0.1}


def _env(settings_env: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {**{k.lower(): v for k, v in settings_env.items()}, **FAST, **extra}


@contextlib.asynccontextmanager
async def running(app: FastStream) -> AsyncIterator[None]:
    task = asyncio.create_task(app.run())
    try:
        yield
    finally:
        app.exit()
        # Not a test of the stop: a broker slow under load may outlast the wait.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)


async def _count(pool: asyncpg.Pool, sql: str, *args: Any) -> int:
    n: int = await pool.fetchval(sql, *args)
    return n


def _at_least(pool: asyncpg.Pool, want: int, sql: str, *args: Any) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await _count(pool, sql, *args) >= want

    return check


async def _published(pool: asyncpg.Pool, relay: str) -> bool:
    """The relay has published all that was queued."""
    return await _count(pool, "SELECT count(*) FROM outbox WHERE relay = $1", relay) == 0


def _poison(monkeypatch: pytest.MonkeyPatch, cls: type, marks: list[str]) -> list[list[InboundRecord]]:
    """Make ``cls.handle_records`` raise for the messages ``marks`` name; return the batches it gets."""
    calls: list[list[InboundRecord]] = []
    monkeypatch.setattr(cls, "handle_records", poisoned(cls.handle_records, marks, calls))  # type: ignore[attr-defined]
    return calls


async def _until_handled(
    app: FastStream, pool: asyncpg.Pool, handled_sql: str, want: int, *, consumer: str, relay: str, poison: int = 1
) -> None:
    """Run ``app`` until ``handled_sql`` counts ``want``, ``poison`` messages are
    dead-lettered and the relay has published it all."""
    async with running(app):
        await wait_for(_at_least(pool, want, handled_sql), 120, f"{want} handled ({handled_sql})")
        await wait_for(_at_least(pool, poison, "SELECT count(*) FROM inbox WHERE consumer = $1", f"{consumer}.poison"),
                       60, f"{poison} poison messages to be dead-lettered")  # fmt: skip
        await wait_for(lambda: _published(pool, relay), 30, "the relay to publish")


def _assert_unprocessable(letters: list[dict[str, Any]], marks: list[str], consumer: str) -> None:
    """One dead letter per poison message, with the reason, its id derived from where it was read."""
    assert [e["type"] for e in letters] == [DEAD] * len(marks)
    for letter, mark in zip(sorted(letters, key=lambda e: e["data"]["original"]["offset"]), marks, strict=True):
        data = letter["data"]
        assert mark in data["original"]["value"]
        assert data["error"]["code"] == "unprocessable"
        assert data["error"]["message"].startswith(f"Poison: {POISON_TEXT}")
        assert data["error"]["details"][0]["exception"] == "tests.poison.Poison"
        original = data["original"]
        where = position(InboundRecord(original["topic"], original["partition"], original["offset"], None, None))
        assert letter["id"] == derived_event_id(where, f"{consumer}.poison", 0)


def _alone(calls: list[list[InboundRecord]], mark: str) -> int:
    """How many times the message holding ``mark`` was handled on its own."""
    return sum(1 for c in calls if len(c) == 1 and c[0].value is not None and mark.encode() in c[0].value)


def _losing_connection(real: Callable[..., Awaitable[Any]], times: int = 1) -> Callable[..., Awaitable[Any]]:
    """``real`` (a function given the service's connection), after that connection was
    terminated by the server on the first ``times`` calls: a database lost mid-transaction."""
    left = times

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal left
        if left > 0:
            left -= 1
            conn = next(a for a in args if hasattr(a, "execute"))
            await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return await real(*args, **kwargs)

    return wrapper


# --------------------------------------------------------------------------- recovery


async def test_recovery_dead_letters_a_poison_charge_and_complaint_and_decides_the_rest_once(
    settings_env: dict[str, str], pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = RecoverySettings(**_env(settings_env))
    boot = settings.kafka_bootstrap_servers
    pairs = [_pair(i, "iso") for i in range(60)]
    marks = [pairs[10][0]["id"], pairs[30][1]["id"]]  # a charge and another customer's complaint
    await produce_events(boot, settings.topic_charges, [p[0] for p in pairs])
    await produce_events(boot, settings.topic_complaints, [p[1] for p in pairs])
    calls: list[list[InboundRecord]] = []
    handled: set[str] = set()  # positions of the batches handled without failing
    real = poisoned(RecoveryService.handle_records, marks, calls)

    async def handle_records(self: RecoveryService, records: Any, *args: Any) -> Any:
        result = await real(self, records, *args)
        handled.update(position(r) for r in records)
        return result

    monkeypatch.setattr(RecoveryService, "handle_records", handle_records)
    poison_before = recovery_metrics.POISON_ISOLATED._value.get()
    good = {p[1]["data"]["complaint_id"] for i, p in enumerate(pairs) if i not in (10, 30)}
    await _until_handled(recovery_kafka.build_app(settings), pool, DECIDED_CASES, len(good),
                         consumer="recovery-service", relay="recovery", poison=2)  # fmt: skip
    decisions = await pool.fetch(
        "SELECT data->>'complaint_id' AS c, count(*) AS n FROM events"
        " WHERE event_type = 'recovery.decision.made.v1' GROUP BY 1"
    )
    assert {r["c"]: r["n"] for r in decisions} == dict.fromkeys(good, 1)
    _assert_unprocessable(await read_to_end(boot, settings.topic_dlq), marks, "recovery-service")
    assert [_alone(calls, m) for m in marks] == [3, 3], "each tried alone three times in all"
    assert recovery_metrics.POISON_ISOLATED._value.get() - poison_before == 2

    # Read again from the start (a new group: every message redelivered): each poison
    # message is dropped after the first failure, never tried alone, never dead-lettered twice.
    calls.clear()
    handled.clear()
    again = RecoverySettings(**_env(settings_env, recovery_group_id=f"{settings.recovery_group_id}-again"))
    async with running(recovery_kafka.build_app(again)):
        await wait_for(lambda: _handled(handled, 2 * len(pairs) - 2), 120, "the backlog to be read again")
        await wait_for(lambda: _published(pool, "recovery"), 30, "the relay to publish")
    assert [_alone(calls, m) for m in marks] == [0, 0]
    assert len(await read_to_end(boot, settings.topic_dlq)) == 2
    decided = await _count(pool, "SELECT count(*) FROM events WHERE event_type = 'recovery.decision.made.v1'")
    assert decided == len(good)


async def _handled(handled: set[str], want: int) -> bool:
    return len(handled) >= want


async def test_recovery_retries_a_lost_database_and_lost_races_and_dead_letters_nothing(
    settings_env: dict[str, str], pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = RecoverySettings(**_env(settings_env, recovery_batch_max=20))
    boot = settings.kafka_bootstrap_servers
    pairs = [_pair(i, "tr") for i in range(60)]
    await produce_events(boot, settings.topic_charges, [p[0] for p in pairs])
    await produce_events(boot, settings.topic_complaints, [p[1] for p in pairs])
    # The connection terminated in the middle of a batch's transaction twelve times (more
    # failures than it takes to split a batch down to one message and try it three times,
    # were they taken for a message's fault), then ten lost races in a row (more than the
    # application's own retries: "kept losing races").
    monkeypatch.setattr(recovery_postgres, "append_new", _losing_connection(append_new, 12))
    races = 10
    real_handle = RecoveryService._handle

    async def losing(self: RecoveryService, tx: Any, events: Any, now: Any) -> Any:
        nonlocal races
        started = await _count(pool, "SELECT count(*) FROM rm_cases") > 0  # some decided already
        if started and races > 0:
            races -= 1
            raise ConcurrencyError("case-x", 1, 2)
        return await real_handle(self, tx, events, now)

    monkeypatch.setattr(RecoveryService, "_handle", losing)
    retries_before = recovery_metrics.TRANSIENT_RETRIES._value.get()
    async with running(recovery_kafka.build_app(settings)):
        await wait_for(_at_least(pool, len(pairs), DECIDED_CASES), 120,
                       "every complaint to be decided")  # fmt: skip
        await wait_for(lambda: _published(pool, "recovery"), 30, "the relay to publish")
    decided = await _count(pool, "SELECT count(DISTINCT data->>'complaint_id') FROM events"
                                 " WHERE event_type = 'recovery.decision.made.v1'")  # fmt: skip
    assert decided == await _count(pool, "SELECT count(*) FROM events WHERE event_type = 'recovery.decision.made.v1'")
    assert decided == len(pairs)
    assert await read_to_end(boot, settings.topic_dlq) == []
    assert await _count(pool, "SELECT count(*) FROM inbox WHERE consumer LIKE '%.poison'") == 0
    assert races == 0
    # Two batches in flight may fail together: one retry at least for the lost connections,
    # one for the lost races.
    assert recovery_metrics.TRANSIENT_RETRIES._value.get() - retries_before >= 2


# --------------------------------------------------------------------------- notifier


async def test_notifier_dead_letters_a_poison_decision_and_requests_every_other_email_once(
    settings_env: dict[str, str], pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = NotifierSettings(**_env(settings_env))
    boot = settings.kafka_bootstrap_servers
    events = [decision_event(i) for i in range(40)]
    marks = [events[17].id]
    calls = _poison(monkeypatch, NotifierService, marks)
    # The transaction also loses its connection eight times: retried, not dead-lettered.
    monkeypatch.setattr(NotifierService, "_record_requests", _losing_connection(NotifierService._record_requests, 8))
    await produce(boot, settings.topic_decisions, [(e.subject, encode(e)) for e in events])
    retries = notifier_metrics.TRANSIENT_RETRIES.labels(consumer="notifier-service")
    retries_before = retries._value.get()
    await _until_handled(notifier_kafka.build_app(settings), pool, "SELECT count(*) FROM notifications",
                         len(events) - 1, consumer="notifier-service", relay="notifier")  # fmt: skip
    causes = await pool.fetch("SELECT causation, count(*) AS n FROM notifications GROUP BY 1")
    assert {r["causation"]: r["n"] for r in causes} == {e.id: 1 for e in events if e.id not in marks}
    _assert_unprocessable(await read_to_end(boot, settings.topic_dlq), marks, "notifier-service")
    assert _alone(calls, marks[0]) == 3
    assert retries._value.get() - retries_before >= 1


# --------------------------------------------------------------------------- delivery worker


async def test_delivery_worker_dead_letters_a_poison_request_and_sends_every_other_email_once(
    settings_env: dict[str, str], pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        settings = NotifierSettings(**_env(settings_env, smtp_host="127.0.0.1", smtp_port=controller.port,
                                           delivery_http_port=0))  # fmt: skip
        boot = settings.kafka_bootstrap_servers
        events = [request(i) for i in range(30)]
        marks = [events[12].id]
        calls = _poison(monkeypatch, DeliveryWorker, marks)
        # Its claims lose their connection eight times: retried, not dead-lettered.
        monkeypatch.setattr(claims, "claim_new", _losing_connection(claims.claim_new, 8))
        await produce(boot, settings.topic_notifications, [(e.subject, encode(e)) for e in events])
        sent = "SELECT count(*) FROM deliveries WHERE status = 'delivered'"
        await _until_handled(delivery_entry.build_app(settings), pool, sent, len(events) - 1,
                             consumer="delivery-worker", relay="delivery")  # fmt: skip
    finally:
        controller.stop()
    delivered = await pool.fetch("SELECT notification_id FROM deliveries WHERE status = 'delivered'")
    assert sorted(r[0] for r in delivered) == sorted(
        str(e.data["notification_id"]) for e in events if e.id not in marks
    )
    assert len(sink.received) == len(events) - 1, "each other email sent once"
    _assert_unprocessable(
        [e for e in await read_to_end(boot, settings.topic_dlq) if e["type"] == DEAD], marks, "delivery-worker"
    )
    assert _alone(calls, marks[0]) == 3


async def test_a_quarantined_message_is_dead_lettered_once_and_remembered_by_position(pool: asyncpg.Pool) -> None:
    q = Quarantine(pool, "c", "r", "dlq", "tests", system_clock)
    poison = InboundRecord("t", 2, 41, b"cust-1", b'{"id": "e-1"}')
    again = InboundRecord("t", 2, 42, b"cust-1", b'{"id": "e-1"}')  # the same event sent once more
    assert await q.put(poison, ValueError("bad amount"))
    assert not await q.put(poison, ValueError("bad amount")), "a redelivery writes no second dead letter"
    assert await q.quarantined([poison, again]) == {"t/2/41"}
    rows = await pool.fetch("SELECT topic, event_id, value FROM outbox WHERE relay = 'r'")
    assert [(r["topic"], r["event_id"]) for r in rows] == [("dlq", "13bfffd5-10a4-5025-9a78-adbdc23b83cd")]  # pinned
    letter = json.loads(rows[0]["value"])
    assert letter["data"]["error"] == {"code": "unprocessable", "message": "ValueError: bad amount",
                                       "details": [{"exception": "builtins.ValueError"}]}  # fmt: skip
    assert letter["data"]["original"]["offset"] == 41
