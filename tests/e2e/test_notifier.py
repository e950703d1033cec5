"""The notifier and the delivery worker as real processes, with a real SMTP server."""

from __future__ import annotations

import asyncio
import time
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
from tests.helpers import SmtpSink as Sink

HOST = "127.0.0.1"
NOW = datetime.now(UTC)
REQUESTED = "notification.email.requested.v1"
DELIVERED = "notification.email.delivered.v1"


class Refuse(Sink):
    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        return "550 5.1.1 mailbox unavailable"


def decision_event(n: int = 1) -> CloudEvent:
    """The decision on complaint ``cmp-n`` of case ``case-n``, for customer ``cust-1``."""
    data = DecisionMade(
        case_id=f"case-{n}",
        complaint_id=f"cmp-{n}",
        customer=Customer(id="cust-1", name="Luis", email="luis@example.com", locale="es-CO"),
        outcome="resolved",
        remedies=[Remedy(type="refund", charge_id="ch-1", amount="4.99", currency="USD")],
        reasons=[Reason(code="failed-delivery", text="La descarga falló.")],
        policy=PolicyRef(id="default", version="1", rule="failed-delivery"),
        decided_by="policy",
        case_owner=Person(id="own-1", name="Ana Pérez", email="ana@shop.example.com"),
        decided_at=NOW,
        sla_deadline=NOW + timedelta(hours=24),
        within_sla=True,
    )
    return new_event(data, source="recovery-service", time=NOW, subject="cust-1",
                     correlation_id=f"cmp-{n}", causation_id=f"cmp-{n}")  # fmt: skip


def _start(handler: Sink) -> Controller:
    controller = Controller(handler, hostname=HOST, port=free_port())
    controller.start()
    return controller


@pytest.fixture
def sink() -> Iterator[tuple[Sink, int]]:
    handler = Sink()
    controller = _start(handler)
    yield handler, controller.port
    controller.stop()


def _processes(env: dict[str, str], port: int, tmp_path: Path) -> list[ServiceProcess]:
    extra = {
        "SMTP_HOST": HOST, "SMTP_PORT": str(port), "SMTP_FROM": "care@shop.example.com",
        "DELIVERY_BASE_DELAY_S": "0.2", "DELIVERY_MAX_DELAY_S": "0.5",
        "DELIVERY_MAX_ATTEMPTS": "3", "DELIVERY_HTTP_PORT": "0", "RELAY_POLL_S": "0.2",
    }  # fmt: skip
    return [
        ServiceProcess("notifier-service", {**env, **extra}, tmp_path / "notifier.log").start(),
        ServiceProcess("delivery-worker", {**env, **extra}, tmp_path / "delivery.log").start(),
    ]


def _stop(procs: list[ServiceProcess]) -> None:
    for p in procs:
        p.stop()


async def _status(database_url: str, notification_id: str, want: str) -> asyncpg.Record:
    """The notifications row once it reaches ``want`` (the read model follows the outcome)."""
    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + 30
        while True:
            row = await conn.fetchrow("SELECT * FROM notifications WHERE notification_id = $1", notification_id)
            if (row is not None and row["status"] == want) or time.monotonic() > deadline:
                assert row is not None
                assert row["status"] == want, dict(row)
                return row
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


def _dump(procs: list[ServiceProcess]) -> None:
    for p in procs:
        print(f"--- {p.script}\n{p.log()[-5000:]}")


async def test_a_decision_becomes_one_spanish_email_delivered_once(
    settings_env: dict[str, str], sink: tuple[Sink, int], tmp_path: Path
) -> None:
    handler, port = sink
    procs = _processes(settings_env, port, tmp_path)
    boot = settings_env["KAFKA_BOOTSTRAP_SERVERS"]
    event = decision_event()
    try:
        # Garbage first: it is dead-lettered and the decision behind it still handled.
        await produce(boot, settings_env["TOPIC_DECISIONS"], [("cust-1", b"{not json")])
        await produce(boot, settings_env["TOPIC_DECISIONS"], [("cust-1", encode(event))])
        async with (
            TopicReader(boot, settings_env["TOPIC_NOTIFICATIONS"]) as notes,
            TopicReader(boot, settings_env["TOPIC_DLQ"]) as dlq,
        ):
            try:
                requested = await notes.wait_for(lambda e: e["type"] == REQUESTED, 60)
                delivered = await notes.wait_for(lambda e: e["type"] == DELIVERED, 60)
            except AssertionError:
                _dump(procs)
                raise
            req = requested[0]
            assert req["causationid"] == event.id
            assert req["subject"] == "cust-1"
            assert req["data"]["locale"].startswith("es")
            assert req["data"]["to"]["email"] == "luis@example.com"
            assert "Luis" in req["data"]["text"]
            assert delivered[0]["data"]["notification_id"] == req["data"]["notification_id"]
            assert len(handler.received) == 1
            _, rcpts, content = handler.received[0]
            assert rcpts == ["luis@example.com"]
            assert req["data"]["notification_id"].encode() in content
            dead = await dlq.wait_for(lambda e: e["type"] == "recovery.deadletter.v1")
            assert dead[0]["data"]["error"]["code"] == "not_json"
            assert len(dead) == 1
            row = await _status(settings_env["DATABASE_URL"], req["data"]["notification_id"], "delivered")
            assert row["case_id"] == "case-1"
            assert row["causation"] == event.id

            # The same decision again (same CloudEvents id), then another decision behind it on
            # the same key: the notifier handles them in order, so once the control's email is
            # delivered and the outbox published, the topic read to its end holds any request
            # the duplicate made. It made none, and sent no second email.
            control = decision_event(2)
            await produce(boot, settings_env["TOPIC_DECISIONS"],
                          [("cust-1", encode(event)), ("cust-1", encode(control))])  # fmt: skip
            try:
                control_req = await notes.wait_for(lambda e: e["type"] == REQUESTED and e["causationid"] == control.id)
                control_nid = control_req[0]["data"]["notification_id"]
                await notes.wait_for(lambda e: e["type"] == DELIVERED and e["data"]["notification_id"] == control_nid)
            except AssertionError:
                _dump(procs)
                raise
            await outbox_empty(settings_env["DATABASE_URL"])
            events = await read_to_end(boot, settings_env["TOPIC_NOTIFICATIONS"])
            assert sorted(e["causationid"] for e in events if e["type"] == REQUESTED) == sorted([event.id, control.id])
            delivered_ids = sorted(e["data"]["notification_id"] for e in events if e["type"] == DELIVERED)
            assert delivered_ids == sorted([req["data"]["notification_id"], control_nid])
            assert len(handler.received) == 2
            assert control_nid.encode() in handler.received[1][2]
        logs = "".join(p.log() for p in procs)
        assert "Traceback" not in logs
        assert "luis@example.com" not in logs
    finally:
        _stop(procs)


async def test_a_refused_recipient_gives_one_failed_outcome(settings_env: dict[str, str], tmp_path: Path) -> None:
    handler = Refuse()
    controller = _start(handler)
    procs = _processes(settings_env, controller.port, tmp_path)
    boot = settings_env["KAFKA_BOOTSTRAP_SERVERS"]
    try:
        await produce(boot, settings_env["TOPIC_DECISIONS"], [("cust-1", encode(decision_event()))])
        async with TopicReader(boot, settings_env["TOPIC_NOTIFICATIONS"]) as notes:
            try:
                failed = await notes.wait_for(lambda e: e["type"] == "notification.email.failed.v1", 60)
            except AssertionError:
                _dump(procs)
                raise
            assert "550" in failed[0]["data"]["error"]
            assert "permanent" in failed[0]["data"]["error"]
            assert handler.received == []
            nid = failed[0]["data"]["notification_id"]
            row = await _status(settings_env["DATABASE_URL"], nid, "failed")
            assert "550" in row["error"]
    finally:
        _stop(procs)
        controller.stop()
