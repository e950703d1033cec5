"""OpenTelemetry tracing: configured from the standard ``OTEL_*`` variables only, off when
none asks for an exporter.

The trace context travels in the events themselves, as the CloudEvents distributed-tracing
extension (``traceparent``, ``tracestate``): a service stamps the events a message caused
with the context of the span that handled it, and the outbox keeps it with the row, so the
relay's publish span and the next consumer's spans continue the same trace. With tracing
off no span is made at all (a flag tested before any OpenTelemetry call: it costs nothing
measurable) and the events carry on the trace context of the message that caused them,
so a trace passes through a service that does not export.

Spans follow the semantic conventions for messaging (``messaging.*``: a ``process`` span
per batch, linked to each of its messages, and one per message that continues the
message's trace; a ``publish`` span per message the relay sends) and for databases (the
asyncpg instrumentation's, and the service's own ``append`` and ``commit``); ``render``
and ``smtp send`` are the notifier's and the delivery worker's own.

Settings (the OpenTelemetry SDK's, see docs/operations.md): ``OTEL_EXPORTER_OTLP_ENDPOINT``
or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (OTLP over HTTP), ``OTEL_TRACES_EXPORTER``
(``otlp``, ``console``, ``none``), ``OTEL_SDK_DISABLED``, ``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``. For tests only,
``SERVICE_TRACES_FILE`` names a file each finished span is appended to as a JSON line.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import IO, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACES_FILE = "SERVICE_TRACES_FILE"
INSTRUMENTATION = "service-recovery"

_PROPAGATOR = TraceContextTextMapPropagator()
_state: dict[str, Any] = {"enabled": False, "provider": None}

TraceContext = tuple[str | None, str | None]  # (traceparent, tracestate)
NO_TRACE: TraceContext = (None, None)


def enabled() -> bool:
    """Whether spans are made and exported in this process."""
    return bool(_state["enabled"])


@contextlib.contextmanager
def recording(provider: Any) -> Iterator[None]:
    """Tracing on, through ``provider`` rather than the global one, for the block (tests)."""
    saved = dict(_state)
    _state.update(enabled=True, provider=provider)
    try:
        yield
    finally:
        _state.update(saved)


def _exporter_names(env: Mapping[str, str]) -> list[str]:
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    named = env.get("OTEL_TRACES_EXPORTER")
    if named is None:
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        return ["otlp"] if endpoint else []
    return [n for n in (part.strip().lower() for part in named.split(",")) if n and n != "none"]


def configure_tracing(service_name: str, env: Mapping[str, str] | None = None) -> bool:
    """Set up the tracer provider and the instrumentations if the environment asks for an
    exporter (or a test's ``SERVICE_TRACES_FILE``); return whether tracing is on."""
    env = os.environ if env is None else env
    names = _exporter_names(env)
    spans_file = env.get(TRACES_FILE)
    if not names and not spans_file:
        return False
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor

    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES are read by Resource.create and win.
    attributes = {} if env.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service_name}
    provider = TracerProvider(resource=Resource.create(attributes))
    for name in names:
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        elif name == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        else:
            raise ValueError(f"OTEL_TRACES_EXPORTER: {name!r} is not one of otlp, console, none")
    if spans_file:
        provider.add_span_processor(SimpleSpanProcessor(json_lines_exporter(spans_file)))
    trace.set_tracer_provider(provider)
    _instrument()
    _state["enabled"] = True
    return True


def _instrument() -> None:
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()


def instrument_app(app: Any) -> None:
    """The FastAPI instrumentation on ``app``, when tracing is on (the probes excluded)."""
    if not enabled():
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics")


def shutdown() -> None:
    """Export what is buffered (at a clean stop)."""
    provider = trace.get_tracer_provider()
    with contextlib.suppress(Exception):
        provider.shutdown()  # type: ignore[attr-defined]


def json_lines_exporter(path: str) -> Any:
    """A span exporter that appends each span to ``path`` as one line of JSON (tests read
    the spans of several processes back and assemble their trees)."""
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class JsonLinesExporter(SpanExporter):
        def __init__(self) -> None:
            self._lock = threading.Lock()
            self._out: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open for the process

        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            with self._lock:
                for span in spans:
                    self._out.write(json.dumps(json.loads(span.to_json()), separators=(",", ":")) + "\n")
                self._out.flush()
            return SpanExportResult.SUCCESS

        def shutdown(self) -> None:
            with self._lock:
                self._out.close()

    return JsonLinesExporter()


# --------------------------------------------------------------------------- context


def tracer() -> trace.Tracer:
    return trace.get_tracer(INSTRUMENTATION, tracer_provider=_state["provider"])


def parent(traceparent: str | None, tracestate: str | None = None) -> otel_context.Context | None:
    """The OpenTelemetry context a span continues from a message's trace context (None for
    none, or one that does not parse: the span starts a trace)."""
    if traceparent is None:
        return None
    carrier = {"traceparent": traceparent}
    if tracestate:
        carrier["tracestate"] = tracestate
    ctx = _PROPAGATOR.extract(carrier)
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


def link(traceparent: str | None, tracestate: str | None = None) -> Link | None:
    ctx = parent(traceparent, tracestate)
    return Link(trace.get_current_span(ctx).get_span_context()) if ctx is not None else None


def context_of(span: Span) -> TraceContext:
    """``span``'s trace context, as a message it caused carries it."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, trace.set_span_in_context(span))
    return carrier.get("traceparent"), carrier.get("tracestate")


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id (32 hex digits) in a traceparent, for log lines."""
    return traceparent[3:35] if traceparent is not None and len(traceparent) >= 55 else None


def current_trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


@contextlib.contextmanager
def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    context: TraceContext | None = None,
    attributes: Mapping[str, Any] | None = None,
    links: Sequence[Link | None] = (),
) -> Iterator[Span | None]:
    """A span named ``name`` (None and nothing made when tracing is off), the current one
    inside the block: a child of the current span, or of ``context`` (a message's trace
    context) when given. An exception out of the block marks it failed."""
    if not _state["enabled"]:
        yield None
        return
    ctx = parent(*context) if context is not None else None
    with tracer().start_as_current_span(
        name, context=ctx, kind=kind, attributes=dict(attributes or {}),
        links=[lk for lk in links if lk is not None],
        record_exception=True, set_status_on_exception=True,
    ) as current:  # fmt: skip
        yield current


def batch_span(
    topics: Iterable[str], count: int, group: str, traces: Iterable[TraceContext]
) -> contextlib.AbstractContextManager[Span | None]:
    """A batch's ``process`` span: a trace of its own, linked to each message's trace."""
    names = sorted(set(topics))
    attributes = messaging("process", names, messaging__batch__message_count=count,
                           messaging__consumer__group__name=group)  # fmt: skip
    return span(f"process {' '.join(names)}", kind=SpanKind.CONSUMER, attributes=attributes,
                links=[link(*t) for t in traces])  # fmt: skip


def failed(current: Span | None, error: BaseException | str) -> None:
    """Mark ``current`` (a span, or None with tracing off) as failed with ``error``."""
    if current is None:
        return
    if isinstance(error, BaseException):
        current.record_exception(error)
        error = type(error).__name__
    current.set_status(Status(StatusCode.ERROR, error))


def messaging(operation: str, destination: str | Sequence[str], **more: Any) -> dict[str, Any]:
    """Messaging semantic-convention attributes for Kafka."""
    names = [destination] if isinstance(destination, str) else list(destination)
    attributes: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.destination.name": names[0] if len(names) == 1 else ",".join(names),
    }
    attributes.update({k.replace("__", "."): v for k, v in more.items() if v is not None})
    return attributes


def database(operation: str, **more: Any) -> dict[str, Any]:
    """Database semantic-convention attributes for PostgreSQL."""
    return {"db.system.name": "postgresql", "db.operation.name": operation, **more}
