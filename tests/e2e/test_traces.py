"""One complaint followed through three service processes (recovery, notifier, delivery
worker) to a delivered email: one trace, each span under the right parent.

Each process exports its spans to a file of its own (SERVICE_TRACES_FILE, a test-only
exporter: one JSON line per span); the test reads them back and assembles the tree.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiosmtpd.controller import Controller

from services.common.devstack import free_port
from tests.helpers import ServiceProcess, produce_events
from tests.helpers import SmtpSink as Sink
from tests.replay_world import charge, complaint

HOST = "127.0.0.1"
TRACE_ID = uuid.uuid4().hex
ROOT = uuid.uuid4().hex[:16]  # the complaint's publisher's span (the contact channel)


@pytest.fixture
def sink() -> Iterator[tuple[Sink, int]]:
    handler = Sink()
    controller = Controller(handler, hostname=HOST, port=free_port())
    controller.start()
    yield handler, controller.port
    controller.stop()


async def _delivered(database_url: str, timeout_s: float = 90) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + timeout_s
        while await conn.fetchval("SELECT count(*) FROM notifications WHERE status = 'delivered'") < 1:
            assert time.monotonic() < deadline, "no email was delivered and recorded"
            await asyncio.sleep(0.3)
    finally:
        await conn.close()


async def _recorded_charge(database_url: str, charge_id: str, timeout_s: float = 60) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + timeout_s
        while await conn.fetchval("SELECT count(*) FROM rm_charges WHERE charge_id = $1", charge_id) < 1:
            assert time.monotonic() < deadline, f"the charge {charge_id} was not recorded"
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


def _spans(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _hex(value: str | None) -> str | None:
    return value.removeprefix("0x") if value else None


async def test_one_complaint_is_one_trace_through_three_services(
    settings_env: dict[str, str], sink: tuple[Sink, int], tmp_path: Path
) -> None:
    handler, port = sink
    env = {
        **settings_env, "SMTP_HOST": HOST, "SMTP_PORT": str(port), "SMTP_FROM": "care@shop.example.com",
        "DELIVERY_HTTP_PORT": "0", "RELAY_POLL_S": "0.2",
    }  # fmt: skip
    files = {name: tmp_path / f"{name}.spans" for name in ("recovery-service", "notifier-service", "delivery-worker")}
    procs = [
        ServiceProcess(name, {**env, "SERVICE_TRACES_FILE": str(path)}, tmp_path / f"{name}.log").start()
        for name, path in files.items()
    ]
    now = datetime.now(UTC)
    posted = charge("cu-trace", "ch-trace", "4.99", "purchase", "digital", now)
    filed = complaint("cu-trace", "cmp-trace", "delivery_failed", now, charge_id="ch-trace")
    filed["traceparent"] = f"00-{TRACE_ID}-{ROOT}-01"
    boot = env["KAFKA_BOOTSTRAP_SERVERS"]
    try:
        await produce_events(boot, env["TOPIC_CHARGES"], [posted])
        # The charge recorded first: a complaint read before its charge opens the case in one
        # batch and decides it in another, which is a different (and equally valid) tree.
        await _recorded_charge(env["DATABASE_MIGRATION_URL"], "ch-trace")
        await produce_events(boot, env["TOPIC_COMPLAINTS"], [filed])
        try:
            await _delivered(env["DATABASE_MIGRATION_URL"])
        except AssertionError:
            for p in procs:
                print(f"--- {p.script}\n{p.log()[-4000:]}")
            raise
    finally:
        for p in procs:
            p.stop()
    assert len(handler.received) == 1

    spans: dict[str, dict[str, Any]] = {}
    for service, path in files.items():
        for s in _spans(path):
            if _hex(s["context"]["trace_id"]) == TRACE_ID:
                assert s["resource"]["attributes"]["service.name"] == service
                spans[_hex(s["context"]["span_id"]) or ""] = {**s, "service": service}
    # One tree: every span's parent is the publisher's span or another span of the trace.
    for s in spans.values():
        assert _hex(s["parent_id"]) in {ROOT, *spans}, (s["name"], s["service"])

    def one(service: str, name: str, parent: str, count: int = 1) -> str:
        found = [sid for sid, s in spans.items()
                 if s["service"] == service and s["name"] == name and _hex(s["parent_id"]) == parent]  # fmt: skip
        assert len(found) == count, (service, name, parent, sorted((s["service"], s["name"]) for s in spans.values()))
        return found[0]

    decisions, notes = env["TOPIC_DECISIONS"], env["TOPIC_NOTIFICATIONS"]
    decide = one("recovery-service", "decide", ROOT)
    one("recovery-service", f"send {decisions}", decide, count=2)  # the relay's: the case opened, its decision
    process = one("notifier-service", f"process {decisions}", decide)
    one("notifier-service", "render", process)
    one("notifier-service", f"send {notes}", process)  # the email request
    sending = one("delivery-worker", "send email", process)
    one("delivery-worker", "smtp send", sending)
    one("delivery-worker", f"send {notes}", sending)  # the outcome
    one("notifier-service", f"process {notes}", sending)  # the outcome recorded
