"""The notifier end to end: decisions on recovery.decisions to email requests on the
notifications topic, with notifier-service as a real process on the real broker and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.registry import Context, Row
from bench.services import Collector, produce, service_env, start, stop

NAME = "notifier"
DESCRIPTION = "notifier-service: email requests/s on a backlog of decisions"
ORDER = 40
NOW = datetime.now(UTC)
REQUESTED = "notification.email.requested.v1"


def _decision(i: int, tag: str) -> dict[str, Any]:
    cust = f"{tag}-c{i}"
    data = {
        "case_id": f"{tag}-case{i}", "complaint_id": f"{tag}-cmp{i}",
        "customer": {"id": cust, "name": "N", "email": "n@example.com", "locale": ("en-US", "es-CO")[i % 2]},
        "outcome": "resolved",
        "remedies": [{"type": "refund", "charge_id": f"{tag}-ch{i}", "amount": "4.99", "currency": "USD"}],
        "reasons": [{"code": "failed-delivery", "text": "The download failed."}],
        "policy": {"id": "default", "version": "1", "rule": "failed-delivery"},
        "decided_by": "policy",
        "case_owner": {"id": "own-1", "name": "Ana", "email": "ana@shop.example.com"},
        "decided_at": NOW.isoformat(), "sla_deadline": (NOW + timedelta(hours=24)).isoformat(),
        "within_sla": True,
    }  # fmt: skip
    return {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "bench",
            "type": "recovery.decision.made.v1", "time": NOW.isoformat(), "subject": cust,
            "datacontenttype": "application/json", "data": data}  # fmt: skip


async def run(ctx: Context) -> list[Row]:
    n = ctx.scale(10_000, quick=2_000)
    env = await service_env(ctx, f"ntf{uuid.uuid4().hex[:6]}")
    env["RELAY_POLL_S"] = "0.1"
    boot = env["KAFKA_BOOTSTRAP_SERVERS"]
    with ctx.progress("backlog into Kafka", total=n) as bar:
        await produce(boot, env["TOPIC_DECISIONS"], [_decision(i, "b") for i in range(n)])
        bar.advance(n)
    collector = Collector(boot, env["TOPIC_NOTIFICATIONS"], REQUESTED, "notification_id")
    await collector.start()
    proc, log = start("notifier-service", env)
    try:
        with ctx.progress(f"request emails for a backlog of {n:,}", total=n) as bar:
            await collector.until(1, 120)
            first = min(collector.arrived.values())
            await collector.until(n, 600, bar.update)
        span = max(collector.arrived.values()) - first
    except TimeoutError as exc:
        raise RuntimeError(f"{exc}; service log: {log}") from None
    finally:
        stop(proc)
        await collector.stop()
    return [
        Row(f"backlog of {n:,} decisions, first to last email request", n / span, "notifications/s",
            "one process; compose + append + read model + outbox per batch, relay to Kafka"),
    ]  # fmt: skip
