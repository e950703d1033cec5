"""The alert rules and the dashboard in deploy/: the rules pass ``promtool check rules``, and
every metric that the rules and the dashboard name is one the services export. Every
``/metrics`` page the services serve passes the official Prometheus parser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

import services.notifier.metrics
import services.recovery.metrics
from services.common.gauges import NAMESPACES, service_gauges
from services.common.http import probes_app

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "service-recovery.json"
PROMTOOL = "/usr/bin/promtool"
# The names of the services' own metrics: PromQL's functions and labels do not start so.
OURS = re.compile(r"\b((?:recovery|notifier|delivery|kafka|outbox)_[a-z0-9_]+)\b")
LABEL_VALUES = re.compile(r'"[^"]*"')


def _exported() -> set[str]:
    """Every sample name the services' registry can expose."""
    for namespace in NAMESPACES:
        service_gauges(namespace)
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
                "gauge": ("",), "summary": ("", "_sum", "_count", "_created"), "info": ("_info",)}  # fmt: skip
    names: set[str] = set()
    for family in REGISTRY.collect():
        names |= {family.name + s for s in suffixes.get(family.type, ("",))}
    return names


def _named(text: str) -> set[str]:
    return set(OURS.findall(LABEL_VALUES.sub("", text)))


def test_the_alert_rules_pass_promtool() -> None:
    promtool = shutil.which("promtool") or (PROMTOOL if Path(PROMTOOL).exists() else None)
    if promtool is None:
        pytest.fail("promtool is missing: run `make system-tools` (Debian's prometheus package)")
    done = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_metric_the_rules_and_the_dashboard_name_is_exported() -> None:
    exprs = [t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p["targets"]]
    named = _named(RULES.read_text()) | _named("\n".join(exprs))
    assert named, "no metric found in the rules and the dashboard"
    assert not named - _exported(), sorted(named - _exported())


def test_the_dashboard_shows_what_operations_watch() -> None:
    titles = " ".join(p["title"].lower() for p in json.loads(DASHBOARD.read_text())["panels"])
    for topic in ("sla", "decisions by rule", "escalations waiting", "consumer lag", "outbox backlog",
                  "oldest", "dead letters", "email outcomes"):  # fmt: skip
        assert topic in titles, topic


async def test_every_metrics_page_passes_the_prometheus_parser() -> None:
    for namespace in NAMESPACES:
        gauges = service_gauges(namespace)
        gauges.build_info.labels(version="1.0").set(1)
        gauges.lag.labels("g", "t", "0").set(3)
    services.recovery.metrics.FILED_TO_DECIDED.observe(1.5)
    services.recovery.metrics.SLA_BREACHES.labels(priority="urgent").inc()
    services.notifier.metrics.EMAILS_FAILED.labels(code_class="5xx").inc()

    async def ready() -> bool:
        return True

    transport = httpx.ASGITransport(app=probes_app(ready, "t", "1.0"))
    async with httpx.AsyncClient(transport=transport, base_url="http://metrics") as client:
        text = (await client.get("/metrics")).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ("recovery_build_info", "notifier_build_info", "delivery_build_info",
                 "recovery_filed_to_decided_seconds", "recovery_sla_breaches", "delivery_emails_failed",
                 "recovery_kafka_consumer_lag_records"):  # fmt: skip
        assert name in families, name
    # Prometheus conventions: counters end in _total, a namespace per service, units named.
    for family in families.values():
        if family.name.startswith(("recovery_", "notifier_", "delivery_")) and family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples), family.name
