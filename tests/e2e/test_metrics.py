"""The running recovery service keeps its lag and outbox gauges on /metrics."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from services.common.devstack import free_port
from tests.helpers import ServiceProcess, produce_events
from tests.replay_world import T0, complaint


def _samples(text: str, name: str) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{")
    }


async def test_the_service_reports_its_partitions_lag_and_its_outbox_backlog(
    settings_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    boot = settings_env["KAFKA_BOOTSTRAP_SERVERS"]
    await produce_events(boot, settings_env["TOPIC_COMPLAINTS"],
                         [complaint(f"m{i}", f"mc{i}", "service_failure", T0) for i in range(12)])  # fmt: skip
    proc = ServiceProcess("recovery-service", {**settings_env, "HTTP_PORT": str(port)}, tmp_path / "r.log").start()
    group = settings_env["RECOVERY_GROUP_ID"]
    try:
        deadline = time.monotonic() + 60
        lag: dict[str, float] = {}
        backlog: dict[str, float] = {}
        scrapes: list[tuple[dict[str, float], dict[str, float]]] = []
        async with httpx.AsyncClient() as http:
            while time.monotonic() < deadline:
                try:
                    text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
                except httpx.TransportError:
                    text = ""
                lag = {k: v for k, v in _samples(text, "kafka_consumer_lag").items() if f'group="{group}"' in k}
                backlog = _samples(text, "outbox_backlog")
                scrapes.append((lag, backlog))
                # three partitions of each of the two input topics, all handled
                if len(lag) == 6 and not any(lag.values()) and backlog.get('outbox_backlog{relay="recovery"}') == 0:
                    break
                await asyncio.sleep(0.5)
        assert len(lag) == 6, (lag, proc.log()[-3000:])
        assert set(lag.values()) == {0.0}
        assert backlog['outbox_backlog{relay="recovery"}'] == 0
        # The whole page passes the official parser; the namespaced names stand beside the old.
        families = {f.name for f in text_string_to_metric_families(text)}
        assert {"recovery_build_info", "recovery_policy_info", "recovery_kafka_consumer_lag_records",
                "recovery_outbox_backlog_messages", "kafka_consumer_lag", "outbox_backlog"} <= families  # fmt: skip
        # On the way there: nothing is published after the start, so a partition's lag only
        # falls, the complaints' never exceed the twelve sent and the charges' stays nought.
        last: dict[str, float] = {}
        for seen_lag, seen_backlog in scrapes:
            assert all(v >= 0 and v == int(v) for v in [*seen_lag.values(), *seen_backlog.values()]), scrapes
            assert all(v <= last.get(k, v) for k, v in seen_lag.items()), (last, seen_lag)
            assert sum(v for k, v in seen_lag.items() if "customer.complaints" in k) <= 12, seen_lag
            assert not any(v for k, v in seen_lag.items() if "billing.charges" in k), seen_lag
            last = {**last, **seen_lag}
    finally:
        proc.stop()
