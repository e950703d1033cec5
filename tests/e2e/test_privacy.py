"""Nothing personal in the logs, the stored errors or the published failures: the services as
real processes at LOG_LEVEL=DEBUG, a real SMTP server that refuses some recipients quoting
their address, and every log line read."""

from __future__ import annotations

import asyncio
import re
import time
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import asyncpg
from aiosmtpd.controller import Controller

from services.common.contract import encode
from services.common.devstack import free_port
from services.recovery.entrypoints.demo import play, stories
from services.recovery.settings import RecoverySettings
from tests.e2e.test_notifier import _status, decision_event
from tests.helpers import ServiceProcess, SmtpSink, TopicReader, produce

HOST = "127.0.0.1"
FAILED = "notification.email.failed.v1"


class RefuseQuoting(SmtpSink):
    """Accepts every recipient but those starting with ``refused``, whom it refuses the way
    mail servers do: quoting the address."""

    def __init__(self, *refused: str) -> None:
        super().__init__()
        self.refused = refused

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        if address.startswith(self.refused):
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"


def _services(env: dict[str, str], smtp_port: int, tmp_path: Path, *scripts: str) -> list[ServiceProcess]:
    extra = {
        "LOG_LEVEL": "DEBUG", "SMTP_HOST": HOST, "SMTP_PORT": str(smtp_port),
        "SMTP_FROM": "care@shop.example.com", "DELIVERY_BASE_DELAY_S": "0.2", "DELIVERY_MAX_DELAY_S": "0.5",
        "DELIVERY_MAX_ATTEMPTS": "3", "DELIVERY_HTTP_PORT": "0", "RELAY_POLL_S": "0.2",
    }  # fmt: skip
    return [ServiceProcess(s, {**env, **extra}, tmp_path / f"{s}.log").start() for s in scripts]


def _logs(procs: list[ServiceProcess]) -> str:
    return "".join(p.log() for p in procs)


def _found(personal: list[str], text: str) -> list[str]:
    """The values of ``personal`` that ``text`` holds, in any case, as whole words (a name, but
    not the start of a customer id such as ``luis-1a2b3c``)."""
    return [v for v in personal if re.search(rf"(?<![\w-]){re.escape(v)}(?![\w-])", text, re.IGNORECASE)]


async def test_a_refusal_quoting_the_address_is_stored_published_and_logged_without_it(
    settings_env: dict[str, str], tmp_path: Path
) -> None:
    event = decision_event()
    customer = event.data["customer"]
    personal = [customer["email"], customer["name"]]
    controller = Controller(RefuseQuoting(customer["email"]), hostname=HOST, port=free_port())
    controller.start()
    procs = _services(settings_env, controller.port, tmp_path, "notifier-service", "delivery-worker")
    boot = settings_env["KAFKA_BOOTSTRAP_SERVERS"]
    try:
        await produce(boot, settings_env["TOPIC_DECISIONS"], [("cust-1", encode(event))])
        async with TopicReader(boot, settings_env["TOPIC_NOTIFICATIONS"]) as notes:
            failed = await notes.wait_for(lambda e: e["type"] == FAILED, 60)
        error = failed[0]["data"]["error"]
        assert "[550] 5.1.1 <[redacted]>: Recipient address rejected" in error
        nid = failed[0]["data"]["notification_id"]
        shown = await _status(settings_env["DATABASE_URL"], nid, "failed")
        conn = await asyncpg.connect(settings_env["DATABASE_URL"])
        try:
            stored = await conn.fetchrow("SELECT * FROM deliveries WHERE notification_id = $1", nid)
            queued = await conn.fetch("SELECT value FROM outbox UNION ALL SELECT value FROM outbox_parked")
        finally:
            await conn.close()
        assert stored["error"] == shown["error"] == error
        assert stored["request"] is None
        for text in (error, str(dict(stored)), str(dict(shown)), *(bytes(r["value"]).decode() for r in queued)):
            assert _found(personal, text) == [], text
    finally:
        for p in procs:
            p.stop()
        controller.stop()
    logs = _logs(procs)
    assert "email.outcome" in logs  # the worker logged the failure
    assert _found(personal, logs) == []


async def test_no_log_line_of_the_customer_stories_names_a_customer(
    settings_env: dict[str, str], tmp_path: Path
) -> None:
    _, _, complaints = stories()
    customers = [c["data"]["customer"] for _, c in complaints]
    # One customer's address is refused, so the failure path runs too.
    refused = customers[0]["email"]
    sink = RefuseQuoting(refused)
    controller = Controller(sink, hostname=HOST, port=free_port())
    controller.start()
    scripts = ("recovery-service", "notifier-service", "delivery-worker")
    procs = _services(settings_env, controller.port, tmp_path, *scripts)
    try:
        settings = RecoverySettings(**{k.lower(): v for k, v in settings_env.items()})  # type: ignore[arg-type]
        rows = await play(settings, timeout_s=90)
        mails = sum(1 for r in rows if r["mail"])
        assert mails >= 6
        deadline = time.monotonic() + 60
        while len(sink.received) < mails - 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert len(sink.received) == mails - 1  # all but the refused one
        async with TopicReader(settings_env["KAFKA_BOOTSTRAP_SERVERS"], settings_env["TOPIC_NOTIFICATIONS"]) as notes:
            await notes.wait_for(lambda e: e["type"] == FAILED, 60)
    finally:
        for p in procs:
            p.stop()
        controller.stop()
    # What the stories carry that is personal: the customers' names and addresses, what they
    # wrote, and the subjects of the emails rendered for them.
    subjects = [str(message_from_bytes(content, policy=policy.default)["Subject"]) for *_, content in sink.received]
    personal = sorted({*(c["name"] for c in customers), *(c["email"] for c in customers),
                       *(c["data"]["description"] for _, c in complaints), *subjects})  # fmt: skip
    logs = {p.script: p.log() for p in procs}
    for script, started in zip(scripts, ("recovery.started", "notifier.started", "delivery.started"), strict=True):
        assert started in logs[script]
    for script, text in logs.items():
        assert _found(personal, text) == [], f"{script} logged {_found(personal, text)}"
