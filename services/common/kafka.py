"""Kafka wiring shared by both services: topics, the producer, the FastStream broker,
and dead letters.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream.kafka import KafkaBroker
from faststream.security import (
    BaseSecurity,
    SASLPlaintext,
    SASLScram256,
    SASLScram512,
)

from services.common.contract import CloudEvent, ContractError, Event, EventData, decode, new_event
from services.common.contract.events import DeadLettered, DeadLetterError, OriginalMessage
from services.common.logging import get_logger
from services.common.records import InboundRecord
from services.common.settings import CommonSettings

log = get_logger(__name__)


async def create_topics(settings: CommonSettings, topics: list[str] | None = None) -> list[str]:
    """Create the contract's topics (or ``topics``) if missing; return those created."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [t for t in (topics or settings.all_topics()) if t not in existing]
        created = []
        for name in wanted:
            try:
                await admin.create_topics(
                    [NewTopic(name, settings.topic_partitions, settings.topic_replication_factor)]
                )
                created.append(name)
            except TopicAlreadyExistsError:
                pass
        return created
    finally:
        await admin.close()


def make_producer(settings: CommonSettings) -> AIOKafkaProducer:
    return AIOKafkaProducer(**settings.kafka_producer_options())


def broker_security(settings: CommonSettings) -> BaseSecurity | None:
    """FastStream's security object for the configured protocol (TLS and/or SASL)."""
    ctx = settings.kafka_ssl_context()
    use_ssl = ctx is not None
    if settings.kafka_sasl_mechanism:
        user = settings.kafka_sasl_username or ""
        password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
        cls: Any = {
            "PLAIN": SASLPlaintext,
            "SCRAM-SHA-256": SASLScram256,
            "SCRAM-SHA-512": SASLScram512,
        }[settings.kafka_sasl_mechanism]
        return cls(username=user, password=password, ssl_context=ctx, use_ssl=use_ssl)  # type: ignore[no-any-return]
    if use_ssl:
        return BaseSecurity(ssl_context=ctx, use_ssl=True)
    return None


def make_broker(settings: CommonSettings, **kwargs: Any) -> KafkaBroker:
    """A FastStream broker with the producer settings (acks, idempotence, batching)."""
    producer = settings.kafka_producer_options()
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        security=broker_security(settings),
        acks=producer["acks"],
        enable_idempotence=producer["enable_idempotence"],
        linger_ms=producer["linger_ms"],
        max_request_size=producer["max_request_size"],
        max_batch_size=producer["max_batch_size"],
        **kwargs,
    )


def dead_letter(
    error: ContractError,
    *,
    topic: str,
    partition: int | None,
    offset: int | None,
    key: bytes | None,
    value: bytes | None,
    source: str,
    now: datetime | None = None,
) -> CloudEvent:
    """A ``recovery.deadletter.v1`` event carrying the raw message and the reason."""
    raw = value or b""
    try:
        text, encoding = raw.decode("utf-8"), "text"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(raw).decode(), "base64"
    when = now or datetime.now(UTC)
    data = DeadLettered(
        original=OriginalMessage(
            topic=topic,
            partition=partition,
            offset=offset,
            key=key.decode("utf-8", "replace") if key is not None else None,
            value=text,
            value_encoding=encoding,
        ),
        error=DeadLetterError(code=error.code, message=error.message, details=error.details),
        received_at=when,
    )
    subject = key.decode("utf-8", "replace") if key is not None else None
    return new_event(data, source=source, time=when, subject=subject)


def decode_batch(
    records: Sequence[InboundRecord], accept: frozenset[str], *, source: str, now: datetime
) -> tuple[list[Event[EventData]], list[CloudEvent]]:
    """Decode a batch of records: the accepted events, and a dead letter for each of the rest."""
    good: list[Event[EventData]] = []
    dead: list[CloudEvent] = []
    for rec in records:
        try:
            good.append(decode(rec.value, accept=accept))
        except ContractError as exc:
            dead.append(
                dead_letter(exc, topic=rec.topic, partition=rec.partition, offset=rec.offset,
                            key=rec.key, value=rec.value, source=source, now=now)
            )  # fmt: skip
            log.warning("message.dead_lettered", code=exc.code, topic=rec.topic,
                        partition=rec.partition, offset=rec.offset)  # fmt: skip
    return good, dead
