"""Kafka wiring shared by both services: topics, the producer, the FastStream broker,
and dead letters.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

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

from services.common.contract import CloudEvent, ContractError, Event, EventData, decode, encode, new_event
from services.common.contract.events import DeadLettered, DeadLetterError, OriginalMessage
from services.common.contract.limits import MAX_ID_LENGTH
from services.common.logging import get_logger
from services.common.records import InboundRecord
from services.common.settings import CommonSettings

log = get_logger(__name__)


def topic_configs(settings: CommonSettings, name: str) -> dict[str, str]:
    """The configs topic ``name`` is created with. Every topic takes the messages the
    producers may send (``max.message.bytes`` = KAFKA_MAX_REQUEST_SIZE: a broker default of
    1 MB would refuse what the producer accepted, and the outbox relay would have to park
    it); the dead-letter topic keeps its messages DLQ_RETENTION_HOURS (a person reads them)."""
    configs = {"max.message.bytes": str(settings.kafka_max_request_size)}
    if name == settings.topic_dlq:
        hours = settings.dlq_retention_hours
        configs["retention.ms"] = str(hours * 3_600_000 if hours else -1)
    return configs


async def create_topics(settings: CommonSettings, topics: list[str] | None = None) -> list[str]:
    """Create the contract's topics (or ``topics``) if missing, with TOPIC_PARTITIONS,
    TOPIC_REPLICATION_FACTOR and :func:`topic_configs`; return those created. Topics that
    exist already are left as they are."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [t for t in (topics or settings.all_topics()) if t not in existing]
        created = []
        for name in wanted:
            topic = NewTopic(name, settings.topic_partitions, settings.topic_replication_factor,
                             topic_configs=topic_configs(settings, name))  # fmt: skip
            try:
                await admin.create_topics([topic])
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
    """A FastStream broker with the producer settings (acks, idempotence, batching); it logs
    through a plain standard-library logger, so its lines join the services' one stream."""
    producer = settings.kafka_producer_options()
    kwargs.setdefault("logger", logging.getLogger("faststream.kafka"))
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


# A dead letter's Kafka record beside its value: the key (the original key, cut to
# _KEY_BYTES) and the record's own framing and headers, kept free under max_request_size.
_KEY_BYTES = 1024
_RECORD_ROOM = _KEY_BYTES + 1024
# The reason's message and details are the consumer's words; bounded all the same.
_MESSAGE_CHARS = 1000
_DETAILS = 50


@dataclass(frozen=True, slots=True)
class DeadLetterLimits:
    """How large a dead letter may grow: ``max_value_bytes`` of the original value are
    kept, and the encoded event stays within ``max_event_bytes``. The defaults fit the
    defaults of the settings and of Kafka (1 MB messages)."""

    max_value_bytes: int = 64 * 1024
    max_event_bytes: int = 1024 * 1024 - _RECORD_ROOM

    @classmethod
    def of(cls, settings: CommonSettings) -> DeadLetterLimits:
        return cls(settings.dead_letter_max_value_bytes, settings.kafka_max_request_size - _RECORD_ROOM)


DEFAULT_DEAD_LETTER_LIMITS = DeadLetterLimits()


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
    limits: DeadLetterLimits = DEFAULT_DEAD_LETTER_LIMITS,
) -> CloudEvent:
    """A ``recovery.deadletter.v1`` event carrying the raw message and the reason.

    The value is kept up to ``limits.max_value_bytes`` (as UTF-8 text when the whole value
    is, else base64), with the whole value's length and SHA-256 and ``truncated`` when
    not all of it is kept. Whatever the message, the encoded dead letter stays within
    ``limits.max_event_bytes``: JSON escapes can make text grow up to six times, and the
    reason's details are the consumer's, so the larger of the two is cut until it fits.
    """
    raw = value or b""
    # Text only when the value is UTF-8 without U+0000, which no contract string may hold
    # (PostgreSQL cannot store it): anything else is kept as base64.
    encoding: Literal["text", "base64"] = "base64" if b"\x00" in raw else "text"
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        encoding = "base64"
    key_text = key[:_KEY_BYTES].decode("utf-8", "replace").replace("\x00", "\ufffd") if key is not None else None
    whole_key = key is None or (key_text is not None and key_text.encode() == key)
    # The subject is the customer id by the contract: only a key that could be one (whole,
    # within the id bound, no U+0000), so that the dead letter passes the contract it states.
    subject = key_text if whole_key and key_text is not None and _could_be_id(key_text) else None
    when = now or datetime.now(UTC)
    kept = min(len(raw), limits.max_value_bytes)
    message, details = error.message[:_MESSAGE_CHARS], error.details[:_DETAILS]
    digest = hashlib.sha256(raw).hexdigest()
    while True:
        prefix = raw[:kept]
        # The whole value is UTF-8, so only a character cut at the end can be dropped here.
        text = prefix.decode("utf-8", "ignore") if encoding == "text" else base64.b64encode(prefix).decode()
        data = DeadLettered(
            original=OriginalMessage(
                topic=topic,
                partition=partition,
                offset=offset,
                key=key_text,
                value=text,
                value_encoding=encoding,
                value_bytes=len(raw),
                value_sha256=digest,
                truncated=kept < len(raw) or not whole_key,
            ),
            error=DeadLetterError(code=error.code, message=message, details=details),
            received_at=when,
        )
        event = new_event(data, source=source, time=when, subject=subject)
        if len(encode(event)) <= limits.max_event_bytes:
            return event
        # Shrink the larger part: the kept value, or the reason (details first).
        if kept and len(text) >= len(message) + len(json.dumps(details)):
            kept //= 2
        elif details:
            details = []
        elif len(message) > 100:
            message = message[:100]
        elif kept:
            kept //= 2
        else:  # unreachable with settings' bounds (a request of 16 KiB at least)
            raise ValueError(f"no dead letter fits in {limits.max_event_bytes} bytes")


def _could_be_id(text: str) -> bool:
    return 0 < len(text) <= MAX_ID_LENGTH


def decode_batch(
    records: Sequence[InboundRecord],
    accept: frozenset[str],
    *,
    source: str,
    now: datetime,
    limits: DeadLetterLimits = DEFAULT_DEAD_LETTER_LIMITS,
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
                            key=rec.key, value=rec.value, source=source, now=now, limits=limits)
            )  # fmt: skip
            log.warning("message.dead_lettered", code=exc.code, topic=rec.topic,
                        partition=rec.partition, offset=rec.offset)  # fmt: skip
    return good, dead
