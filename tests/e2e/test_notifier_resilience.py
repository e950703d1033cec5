"""The notifier and the delivery worker under trouble: a mail server that defers, and a
notifier killed with SIGKILL in the middle of a backlog."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiosmtpd.controller import Controller

from services.common.contract import CloudEvent, encode, new_event
from services.common.contract.events import (
    Customer,
    DecisionMade,
    Person,
    PolicyRef,
    Reason,
    Remedy,
)
from services.common.devstack import free_port
from tests.helpers import ServiceProcess, TopicReader, outbox_empty, produce, read_to_end

HOST = "127.0.0.1"
NOW = datetime.now(UTC)
REQUESTED = "notification.email.requested.v1"
DELIVERED = "notification.email.delivered.v1"
FAILED = "notification.email.failed.v1"


class Deferring:
    """Answers 451 to the first ``defer`` DATA commands, then accepts."""

    def __init__(self, defer: int) -> None:
        self.defer = defer
        self.attempts = 0
        self.received: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.attempts += 1
        if self.attempts <= self.defer:
            return "451 try again later"
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def deferring() -> Iterator[tuple[Deferring, int]]:
    handler = Deferring(2)
    controller = Controller(handler, hostname=HOST, port=free_port())
    controller.start()
    yield handler, controller.port
    controller.stop()


def decision_event(i: int) -> CloudEvent:
    cust, case = f"cust-{i}", f"case-{i}"
    data = DecisionMade(
        case_id=case,
        complaint_id=f"cmp-{i}",
        customer=Customer(id=cust, name=f"Cliente {i}", email=f"c{i}@example.com", locale="es-CO"),
        outcome="resolved",
        remedies=[Remedy(type="refund", charge_id=f"ch-{i}", amount="4.99", currency="USD")],
        reasons=[Reason(code="failed-delivery", text="La descarga falló.")],
        policy=PolicyRef(id="default", version="1", rule="failed-delivery"),
        decided_by="policy",
        case_owner=Person(id="own-1", name="Ana Pérez", email="ana@shop.example.com"),
        decided_at=NOW,
        sla_deadline=NOW + timedelta(hours=24),
        within_sla=True,
    )
    return new_event(data, source="recovery-service", time=NOW, subject=cust,
                     correlation_id=f"cmp-{i}", causation_id=f"cmp-{i}")  # fmt: skip


def _dump(procs: list[ServiceProcess]) -> None:
    for p in procs:
        print(f"--- {p.script}\n{p.log()[-5000:]}")


async def test_a_deferring_server_gets_the_email_once_after_retries(
    settings_env: dict[str, str], deferring: tuple[Deferring, int], tmp_path: Path
) -> None:
    handler, port = deferring
    env = {
        **settings_env,
        "SMTP_HOST": HOST, "SMTP_PORT": str(port), "SMTP_FROM": "care@shop.example.com",
        "DELIVERY_BASE_DELAY_S": "0.2", "DELIVERY_MAX_DELAY_S": "0.5",
        "DELIVERY_MAX_ATTEMPTS": "6", "DELIVERY_HTTP_PORT": "0", "RELAY_POLL_S": "0.2",
    }  # fmt: skip
    procs = [
        ServiceProcess("notifier-service", env, tmp_path / "notifier.log").start(),
        ServiceProcess("delivery-worker", env, tmp_path / "delivery.log").start(),
    ]
    boot = settings_env["KAFKA_BOOTSTRAP_SERVERS"]
    event = decision_event(1)
    try:
        await produce(boot, settings_env["TOPIC_DECISIONS"], [("cust-1", encode(event))])
        async with TopicReader(boot, settings_env["TOPIC_NOTIFICATIONS"]) as notes:
            try:
                delivered = await notes.wait_for(lambda e: e["type"] == DELIVERED, 60)
            except AssertionError:
                _dump(procs)
                raise
            # Once both relays published all they queued and the services stopped, the
            # topic read to its end holds every request and outcome there will be.
            await outbox_empty(settings_env["DATABASE_URL"])
            for p in procs:
                p.stop()
            notes.events[:] = await read_to_end(boot, settings_env["TOPIC_NOTIFICATIONS"])
            requested = [e for e in notes.events if e["type"] == REQUESTED]
            assert len({e["id"] for e in requested}) == 1
            nid = requested[0]["data"]["notification_id"]
            assert [e["data"]["notification_id"] for e in delivered] == [nid]
            assert len({e["id"] for e in notes.events if e["type"] == DELIVERED}) == 1
            assert [e for e in notes.events if e["type"] == FAILED] == []
            assert handler.attempts == 3
            assert len(handler.received) == 1
            _, rcpts, content = handler.received[0]
            assert rcpts == ["c1@example.com"]
            assert nid.encode() in content
        conn = await asyncpg.connect(settings_env["DATABASE_URL"])
        try:
            row = await conn.fetchrow("SELECT status, attempts FROM deliveries WHERE notification_id = $1", nid)
        finally:
            await conn.close()
        assert row is not None
        assert row["status"] == "delivered"
        assert row["attempts"] == 3
    finally:
        for p in procs:
            p.stop()


async def test_a_notifier_killed_mid_backlog_requests_each_email_once(
    settings_env: dict[str, str], tmp_path: Path
) -> None:
    n = 1_500
    boot = settings_env["KAFKA_BOOTSTRAP_SERVERS"]
    events = [decision_event(i) for i in range(n)]
    decisions = {e.id for e in events}
    await produce(boot, settings_env["TOPIC_DECISIONS"], [(e.subject, encode(e)) for e in events])
    # Small batches so the kill lands in the middle of the backlog, not after it.
    env = {**settings_env, "NOTIFIER_BATCH_MAX": "25", "RELAY_BATCH_SIZE": "25", "RELAY_POLL_S": "0.2"}
    first = ServiceProcess("notifier-service", env, tmp_path / "notifier-1.log").start()
    second: ServiceProcess | None = None
    try:
        async with TopicReader(boot, settings_env["TOPIC_NOTIFICATIONS"]) as notes:

            def requested_ids() -> set[str]:
                return {e["causationid"] for e in notes.events if e["type"] == REQUESTED}

            try:
                await notes.wait_count(lambda e: e["type"] == REQUESTED, 100, 60)
            except AssertionError:
                _dump([first])
                raise
            first.kill()
            assert first.proc is not None
            assert first.proc.returncode == -9
            seen_at_kill = len(requested_ids())
            assert seen_at_kill < n, "the backlog was done before the kill"

            second = ServiceProcess("notifier-service", env, tmp_path / "notifier-2.log").start()
            deadline = time.monotonic() + 120
            while len(requested_ids()) < n and time.monotonic() < deadline:
                await notes.poll()
            if len(requested_ids()) < n:
                _dump([first, second])
            assert len(requested_ids()) == n, f"{len(requested_ids())} of {n} (kill at {seen_at_kill})"
            await outbox_empty(settings_env["DATABASE_URL"])
            second.stop()
            notes.events[:] = await read_to_end(boot, settings_env["TOPIC_NOTIFICATIONS"])  # all there is

            requested = [e for e in notes.events if e["type"] == REQUESTED]
            assert {e["causationid"] for e in requested} == decisions
            nids_per_decision: dict[str, set[str]] = defaultdict(set)
            ids_per_nid: dict[str, set[str]] = defaultdict(set)
            for e in requested:
                nids_per_decision[e["causationid"]].add(e["data"]["notification_id"])
                ids_per_nid[e["data"]["notification_id"]].add(e["id"])
            assert all(len(v) == 1 for v in nids_per_decision.values())
            assert len(ids_per_nid) == n
            assert all(len(v) == 1 for v in ids_per_nid.values())
            nids = set(ids_per_nid)

        conn = await asyncpg.connect(settings_env["DATABASE_URL"])
        try:
            rows = await conn.fetch("SELECT notification_id, causation FROM notifications")
            streams = await conn.fetch(
                "SELECT stream_id, count(*) AS n FROM events WHERE stream_id LIKE 'notification-%' GROUP BY stream_id"
            )
        finally:
            await conn.close()
        assert len(rows) == n
        assert {r["notification_id"] for r in rows} == nids
        assert {r["causation"] for r in rows} == decisions
        assert len(streams) == n
        assert {s["stream_id"] for s in streams} == {f"notification-{i}" for i in nids}
        assert all(s["n"] == 1 for s in streams)
        logs = first.log() + second.log()
        assert "Traceback" not in logs
    finally:
        first.stop()
        if second is not None:
            second.stop()
