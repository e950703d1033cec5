"""The trace context kept with each outbox row: the relay's publish span continues it (a
relay that starts after the row was queued, as after a restart, included), and a row parked
and queued again keeps it."""

from __future__ import annotations

import asyncpg
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from services.common import tracing
from services.common.kafka import make_producer
from services.common.outbox import OutboxMessage, enqueue, outbox_backlog, park, retry_parked
from services.common.settings import CommonSettings
from tests.integration.test_relay import running_relay, wait_for

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT}-01"
RELAY = "decisions"  # as running_relay names it


def _message(topic: str, n: int, traceparent: str | None) -> OutboxMessage:
    return OutboxMessage(topic=topic, key=b"cust-1", value=b"%d" % n, event_id=f"e{n}", traceparent=traceparent,
                         tracestate="congo=t61rcWkgMzE" if traceparent else None)  # fmt: skip


async def test_the_publish_span_continues_the_rows_trace_context(
    pool: asyncpg.Pool, common_settings: CommonSettings
) -> None:
    topic = common_settings.topic_decisions
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(conn, RELAY, [_message(topic, 1, TRACEPARENT), _message(topic, 2, None)])
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    producer = make_producer(common_settings)
    await producer.start()
    try:
        with tracing.recording(provider):
            async with running_relay(pool, producer, batch_size=10, poll_s=0.1):  # started after the rows
                await wait_for(lambda: _empty(pool), 30, "the outbox to drain")
    finally:
        await producer.stop()
    (span,) = exporter.get_finished_spans()  # the row without a trace context makes none
    assert span.name == f"send {topic}"
    assert span.kind is SpanKind.PRODUCER
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == PARENT
    assert span.attributes is not None
    assert span.attributes["messaging.destination.name"] == topic


async def _empty(pool: asyncpg.Pool) -> bool:
    return await outbox_backlog(pool, RELAY) == 0


async def test_a_parked_row_queued_again_keeps_its_trace_context(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(conn, "traced", [_message("t", 1, TRACEPARENT)])
        row_id = await conn.fetchval("SELECT id FROM outbox WHERE relay = 'traced'")
        assert await park(conn, {row_id: "RecordTooLargeError: too large"}) == 1
        parked = await conn.fetchrow("SELECT traceparent, tracestate FROM outbox_parked WHERE id = $1", row_id)
        assert tuple(parked) == (TRACEPARENT, "congo=t61rcWkgMzE")
        queued = await retry_parked(conn, [row_id])
        again = await conn.fetchrow("SELECT traceparent, tracestate FROM outbox WHERE id = $1", queued[row_id])
        assert tuple(again) == (TRACEPARENT, "congo=t61rcWkgMzE")
