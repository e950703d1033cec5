"""Trace context through the recovery application: decisions continue the trace of the
message that caused them, with tracing off (the message's own context) and on (the span that
decided); the exporter is chosen by the standard OTEL_* variables only."""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.common import tracing
from services.common.clock import ManualClock
from services.common.settings import CommonSettings
from services.recovery.adapters.memory import MemoryUnitOfWork
from services.recovery.application import RecoveryService
from services.recovery.domain.policy import load_policy
from services.recovery.domain.roster import load_roster
from tests.helpers import VOUCHERS
from tests.replay_world import T0, charge, complaint, records

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


async def _published(uow: MemoryUnitOfWork, traceparent: str | None) -> list[dict[str, Any]]:
    service = RecoveryService(None, CommonSettings(), load_policy(), load_roster(), ManualClock(T0),
                              vouchers=VOUCHERS, uow=uow)  # fmt: skip
    posted = charge("cu-1", "ch-1", "4.99", "purchase", "digital", T0)
    filed = complaint("cu-1", "cmp-1", "delivery_failed", T0, charge_id="ch-1")
    if traceparent:
        filed["traceparent"] = traceparent
    await service.handle_records(records([posted, filed]))
    return [json.loads(m.value) for _, m in uow.outbox if m.topic.endswith("decisions")]


def test_no_exporter_is_configured_without_otel_variables() -> None:
    assert tracing.configure_tracing("t", {}) is False
    assert (
        tracing.configure_tracing("t", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "true"})
        is False
    )
    assert tracing.configure_tracing("t", {"OTEL_TRACES_EXPORTER": "none"}) is False
    assert not tracing.enabled()
    assert tracing._exporter_names({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}) == [
        "otlp"
    ]
    assert tracing._exporter_names({"OTEL_TRACES_EXPORTER": "console,otlp"}) == ["console", "otlp"]


async def test_with_tracing_off_decisions_carry_the_complaints_trace_context() -> None:
    published = await _published(MemoryUnitOfWork(), TRACEPARENT)
    assert published
    assert {p["traceparent"] for p in published} == {TRACEPARENT}


async def test_a_complaint_without_trace_context_gives_decisions_without() -> None:
    assert all("traceparent" not in p for p in await _published(MemoryUnitOfWork(), None))


async def test_with_tracing_on_decisions_carry_the_decide_span_under_the_complaints() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with tracing.recording(provider):
        published = await _published(MemoryUnitOfWork(), TRACEPARENT)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    decide = [s for s in exporter.get_finished_spans() if s.name == "decide" and s.parent is not None
              and format(s.parent.span_id, "016x") == "b7ad6b7169203331"]  # fmt: skip
    assert len(decide) == 1
    assert format(decide[0].context.trace_id, "032x") == TRACE_ID
    span_id = format(decide[0].context.span_id, "016x")
    assert {p["traceparent"] for p in published} == {f"00-{TRACE_ID}-{span_id}-01"}
    batch = next(s for name, s in spans.items() if name.startswith("process "))
    assert any(format(link.context.trace_id, "032x") == TRACE_ID for link in batch.links)
    assert spans["append"].parent is not None
    assert spans["append"].parent.span_id == batch.context.span_id
    assert spans["decide"].attributes is not None
    assert spans["decide"].attributes["messaging.system"] == "kafka"
