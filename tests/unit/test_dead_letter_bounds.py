"""Dead letters are bounded: whatever a consumer received, the dead letter fits under the
producer's max_request_size, and says how long the original was, its SHA-256 and whether
only part of it is kept."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import pytest
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from pydantic import ValidationError

from services.common.contract import CONTENT_TYPE, ContractError, decode, encode
from services.common.contract.events import DeadLettered, OriginalMessage
from services.common.kafka import DeadLetterLimits, dead_letter, topic_configs
from services.common.settings import CommonSettings

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
TOO_LARGE = ContractError("too_large", "message of many bytes is over 1000000")


def letter(value: bytes, *, key: bytes | None = b"cust-0042", error: ContractError = TOO_LARGE,
           limits: DeadLetterLimits | None = None) -> tuple[OriginalMessage, bytes, bytes | None]:  # fmt: skip
    """The dead letter's original, its encoded value and its Kafka key."""
    event = dead_letter(error, topic="customer.complaints", partition=1, offset=7, key=key, value=value,
                        source="recovery-service", now=NOW, limits=limits or DeadLetterLimits())  # fmt: skip
    encoded = encode(event)
    data = decode(encoded).data
    assert isinstance(data, DeadLettered)
    return data.original, encoded, event.subject.encode() if event.subject else None


def record_size(key: bytes | None, value: bytes) -> int:
    """What aiokafka's producer compares with max_request_size."""
    size: int = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, [("content-type", CONTENT_TYPE.encode())])
    return size


def kept_bytes(original: OriginalMessage) -> bytes:
    if original.value_encoding == "base64":
        return base64.b64decode(original.value)
    return original.value.encode()


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b"x" * 100, id="text"),
        pytest.param(bytes(range(256)) * 3, id="binary"),
        pytest.param(b"", id="empty"),
    ],
)
def test_a_small_original_is_kept_whole_with_its_length_and_sha256(value: bytes) -> None:
    original, _, _ = letter(value)
    assert kept_bytes(original) == value
    assert original.value_bytes == len(value)
    assert original.value_sha256 == hashlib.sha256(value).hexdigest()
    assert original.truncated is False


@pytest.mark.parametrize(
    "fill",
    [
        pytest.param(b'{"a": "' + "ñ€".encode() * 10, id="utf8-text"),
        pytest.param(b"\x00\xff\xfe" * 7, id="binary"),
        pytest.param(b"\x01\x1f", id="control-characters"),  # \u0001 in JSON: six bytes each
    ],
)
def test_a_value_just_under_the_consumers_maximum_gives_a_dead_letter_the_producer_accepts(fill: bytes) -> None:
    settings = CommonSettings()
    # The consumer takes records up to max_partition_fetch_bytes (= KAFKA_MAX_REQUEST_SIZE).
    consumer_max = settings.kafka_consumer_options()["max_partition_fetch_bytes"]
    value = (fill * (consumer_max // len(fill)))[: consumer_max - 1024]

    original, encoded, key = letter(value, limits=DeadLetterLimits.of(settings))

    assert record_size(key, encoded) <= settings.kafka_producer_options()["max_request_size"]
    assert original.truncated is True
    assert original.value_bytes == len(value)
    assert original.value_sha256 == hashlib.sha256(value).hexdigest()
    kept = kept_bytes(original)
    assert 0 < len(kept) <= settings.dead_letter_max_value_bytes
    assert value.startswith(kept)


def test_text_is_cut_between_characters_never_inside_one() -> None:
    value = "ñ".encode() * 1000  # two bytes each
    original, _, _ = letter(value, limits=DeadLetterLimits(max_value_bytes=1001))
    assert original.value_encoding == "text"
    assert original.value == "ñ" * 500
    assert original.truncated is True


def test_when_escapes_would_overflow_the_event_what_is_kept_shrinks_until_it_fits() -> None:
    limits = DeadLetterLimits(max_value_bytes=1_000_000, max_event_bytes=200_000)
    value = b"\x01" * 1_000_000  # six bytes apiece once escaped
    original, encoded, _ = letter(value, limits=limits)
    assert len(encoded) <= limits.max_event_bytes
    assert original.truncated is True
    assert 0 < len(kept_bytes(original)) < 200_000 // 6


def test_an_oversized_reason_is_cut_to_fit() -> None:
    limits = DeadLetterLimits(max_event_bytes=8_000)
    error = ContractError(
        "invalid_data", "m" * 50_000, [{"loc": f"data.items.{i}", "msg": "x" * 500} for i in range(500)]
    )
    original, encoded, _ = letter(b"{}", error=error, limits=limits)
    assert len(encoded) <= limits.max_event_bytes
    assert original.truncated is False  # the message itself is whole; only the reason was cut


@pytest.mark.parametrize(
    "key",
    [pytest.param(b"k" * 5000, id="too-long"), pytest.param(b"cust-\xff", id="not-utf8")],
)
def test_a_key_not_kept_as_it_was_marks_the_original_truncated(key: bytes) -> None:
    original, encoded, dl_key = letter(b"{}", key=key)
    assert original.truncated is True
    assert kept_bytes(original) == b"{}"
    assert record_size(dl_key, encoded) < 1024 * 1024


def test_settings_refuse_a_request_size_too_small_for_any_dead_letter() -> None:
    with pytest.raises(ValidationError, match="kafka_max_request_size"):
        CommonSettings(kafka_max_request_size=8 * 1024)


# --------------------------------------------------------------------------- topic configs


def test_every_topic_takes_what_the_producer_may_send() -> None:
    settings = CommonSettings(kafka_max_request_size=3_000_000)
    for name in settings.all_topics():
        assert topic_configs(settings, name)["max.message.bytes"] == "3000000"


def test_the_dead_letter_topic_keeps_its_messages_for_the_retention_set_and_the_others_the_brokers_default() -> None:
    settings = CommonSettings(dlq_retention_hours=24 * 45)
    assert topic_configs(settings, settings.topic_dlq)["retention.ms"] == str(45 * 24 * 3600 * 1000)
    assert all(
        "retention.ms" not in topic_configs(settings, t) for t in settings.all_topics() if t != settings.topic_dlq
    )
    assert topic_configs(CommonSettings(dlq_retention_hours=0), "recovery.dlq")["retention.ms"] == "-1"


def test_the_default_dead_letter_retention_is_thirty_days() -> None:
    assert topic_configs(CommonSettings(), "recovery.dlq")["retention.ms"] == str(30 * 24 * 3600 * 1000)


def test_the_services_dead_letters_follow_the_settings() -> None:
    """Every dead letter a service writes (a decode failure, a quarantined poison message)
    takes its bounds from the settings: DEAD_LETTER_MAX_VALUE_BYTES and the request size."""
    settings = CommonSettings(dead_letter_max_value_bytes=100, kafka_max_request_size=512 * 1024)
    limits = settings.dead_letter_limits()
    assert limits.max_value_bytes == 100
    assert limits.max_event_bytes < 512 * 1024
    assert settings.quarantine_options()["limits"] == limits
    original, _, _ = letter(b"x" * 5_000, limits=limits)
    assert original.truncated
    assert original.value_bytes == 5_000
    assert len(original.value) == 100


@pytest.mark.parametrize("key", [b"k" * 201, b"cust\x00", b"\xff\xfe"])
def test_a_dead_letter_whose_key_cannot_be_a_customer_id_has_no_subject_and_passes_the_contract(key: bytes) -> None:
    event = dead_letter(TOO_LARGE, topic="customer.complaints", partition=0, offset=1, key=key, value=b"{}",
                        source="recovery-service", now=NOW)  # fmt: skip
    assert event.subject is None
    assert isinstance(decode(encode(event)).data, DeadLettered)  # our own contract takes it


def test_a_dead_letter_keeps_a_customer_id_key_as_its_subject() -> None:
    event = dead_letter(TOO_LARGE, topic="customer.complaints", partition=0, offset=1, key=b"c" * 200, value=b"{}",
                        source="recovery-service", now=NOW)  # fmt: skip
    assert event.subject == "c" * 200


def test_a_value_holding_u0000_is_kept_as_base64_so_the_dead_letter_passes_the_contract() -> None:
    value = b'{"specversion": "1.0", "id": "a\x00b"}'
    original, _, _ = letter(value)
    assert original.value_encoding == "base64"
    assert base64.b64decode(original.value) == value
