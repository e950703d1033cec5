"""The wire contract's promises to the outside world (docs/contract.md), each as a rule that fails if broken."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from services.common.contract import CloudEvent, ContractError, decode, encode, new_event
from services.common.contract.envelope import extensions_of
from services.common.contract.events import (
    ChargeFlagged,
    ChargePosted,
    ComplaintFiled,
    DeadLettered,
    Remedy,
    SlaWarning,
)
from services.common.kafka import dead_letter

T = "2026-11-22T10:15:00Z"
NOW = datetime(2026, 11, 22, 10, 15, tzinfo=UTC)


def charge(amount: Any, currency: str = "USD", **extra: Any) -> dict[str, Any]:
    return {
        "charge_id": "ch-1",
        "customer_id": "cust-0042",
        "amount": amount,
        "currency": currency,
        "kind": "purchase",
        "posted_at": T,
        **extra,
    }


def wire(data: dict[str, Any] | None = None, **envelope: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "evt-1",
        "source": "billing/eu-west",
        "type": "billing.charge.posted.v1",
        "time": T,
        "subject": "cust-0042",
        "datacontenttype": "application/json",
        "data": data if data is not None else charge("4.99"),
        **envelope,
    }


def raw(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


def error_code(value: bytes | str | None, **kwargs: Any) -> str:
    with pytest.raises(ContractError) as info:
        decode(value, **kwargs)
    return info.value.code


# --------------------------------------------------------------------------- money


@pytest.mark.parametrize(
    ("amount", "currency"),
    [("4.99", "USD"), ("7455.00", "COP"), ("5", "USD"), ("3000", "JPY"), ("1.234", "KWD"),
     ("0.01", "EUR")],
)  # fmt: skip
def test_money_within_the_currencys_minor_units_is_accepted(amount: str, currency: str) -> None:
    posted = ChargePosted.model_validate(charge(amount, currency))
    assert posted.amount == Decimal(amount)


@pytest.mark.parametrize(
    ("amount", "currency"),
    [("4.999", "USD"), ("3000.5", "JPY"), ("3000.0", "JPY"), ("1.2345", "KWD")],
)
def test_money_with_more_decimals_than_the_currency_allows_is_refused(amount: str, currency: str) -> None:
    with pytest.raises(ValidationError, match=f"{currency} allows"):
        ChargePosted.model_validate(charge(amount, currency))


def test_a_float_amount_is_refused_even_when_it_looks_exact() -> None:
    with pytest.raises(ValidationError, match="never a float"):
        ChargePosted.model_validate(charge(4.99))
    with pytest.raises(ContractError) as info:
        decode(raw(wire(charge(4.5))))
    assert info.value.code == "invalid_data"


@pytest.mark.parametrize("amount", ["0", "0.00", "-4.99", "", "4,99", "1e3", "4.9.9", "NaN"])
def test_zero_negative_and_malformed_amounts_are_refused(amount: str) -> None:
    with pytest.raises(ValidationError):
        ChargePosted.model_validate(charge(amount))


def test_an_amount_without_a_currency_is_refused() -> None:
    base = {
        "complaint_id": "cmp-1",
        "customer": {"id": "c", "name": "Ana", "email": "ana@example.com"},
        "channel": "web",
        "category": "charge_disputed",
        "filed_at": T,
    }
    assert ComplaintFiled.model_validate(base).claimed_amount is None
    with pytest.raises(ValidationError, match="needs a currency"):
        ComplaintFiled.model_validate({**base, "claimed_amount": "4.99"})
    with pytest.raises(ValidationError, match="needs an amount"):
        Remedy.model_validate({"type": "refund", "charge_id": "ch-1"})


def test_money_goes_out_as_the_same_decimal_string_it_came_in_as() -> None:
    for amount, currency in [("7455.00", "COP"), ("3000", "JPY"), ("0.500", "KWD")]:
        data = json.loads(ChargePosted.model_validate(charge(amount, currency)).model_dump_json())
        assert data["amount"] == amount


# --------------------------------------------------------------------------- time


def test_times_without_a_zone_are_refused_in_the_envelope_and_in_data() -> None:
    assert error_code(raw(wire(time="2026-11-22T10:15:00"))) == "not_cloudevent"
    naive = {"case_id": "case-1", "sla_deadline": "2026-11-22T10:15:00", "at": T}
    doc = wire(naive, type="recovery.sla.warning.v1")
    assert error_code(raw(doc)) == "invalid_data"
    with pytest.raises(ValidationError):
        SlaWarning(case_id="c", sla_deadline=datetime(2026, 11, 22), at=NOW)


def test_times_with_any_zone_are_accepted() -> None:
    event = decode(raw(wire(time="2026-11-22T05:15:00-05:00")))
    assert event.envelope.time == NOW


# --------------------------------------------------------------------------- unknown fields


def test_unknown_fields_are_accepted_in_the_envelope_in_data_and_in_nested_objects() -> None:
    data = charge("4.99", added_later="x", product={"type": "digital", "colour": "red"})
    event = decode(raw(wire(data, newextension="y", traceparent="00-abc", Not_An_Extension="z", nested={"a": 1})))
    assert isinstance(event.data, ChargePosted)
    assert event.data.product is not None
    assert event.data.product.type == "digital"
    dumped = event.envelope.model_dump()
    # A valid extension attribute is kept; an invalid traceparent and what is no extension are dropped.
    assert dumped["newextension"] == "y"
    assert dumped["traceparent"] is None
    assert "Not_An_Extension" not in dumped
    assert "nested" not in dumped


TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_trace_context_and_extensions_are_kept_and_encoded_again() -> None:
    event = decode(raw(wire(traceparent=TRACEPARENT, tracestate="congo=t61rcWkgMzE", region="eu", retries=2,
                            sampled=True)))  # fmt: skip
    env = event.envelope
    assert (env.traceparent, env.tracestate) == (TRACEPARENT, "congo=t61rcWkgMzE")
    assert extensions_of(env) == {"region": "eu", "retries": 2, "sampled": True}
    again = json.loads(encode(env))
    assert (again["traceparent"], again["region"], again["retries"]) == (TRACEPARENT, "eu", 2)
    assert decode(encode(env)).envelope == env


def test_extensions_past_the_bounds_are_dropped() -> None:
    many: dict[str, Any] = {f"ext{i}": "v" for i in range(30)}
    env = decode(raw(wire(long="x" * 201, floating=1.5, huge=2**40, tracestate="x" * 513, **many))).envelope
    kept = extensions_of(env)
    assert len(kept) == 20
    assert all(k.startswith("ext") for k in kept)
    assert env.tracestate is None


# --------------------------------------------------------------------------- decode errors


@pytest.mark.parametrize("value", [b"\xff\xfe\x00", b"not json", b"[1, 2]", b'"a string"', b"", None])
def test_values_that_are_not_a_json_object_are_not_json(value: bytes | None) -> None:
    assert error_code(value) == "not_json"


def test_an_escaped_lone_surrogate_is_not_json() -> None:
    # Valid JSON syntax, but no text: it could never be stored or published again.
    value = raw(wire(charge("4.99"))).replace(b'"customer_id": "', b'"customer_id": "\\ud800', 1)
    assert b"\\ud800" in value
    assert error_code(value) == "not_json"


def test_text_holding_a_lone_surrogate_is_not_json() -> None:
    # A str, not bytes: it has no UTF-8 form at all, so it is refused before it is parsed.
    text = json.dumps(wire(), ensure_ascii=False).replace("cust-0042", "cust-\ud800", 1)
    assert error_code(text) == "not_json"


@pytest.mark.parametrize("missing", ["id", "source", "type", "time", "data"])
def test_an_envelope_missing_a_required_attribute_is_not_a_cloudevent(missing: str) -> None:
    doc = wire()
    del doc[missing]
    assert error_code(raw(doc)) == "not_cloudevent"


def test_an_envelope_without_specversion_is_not_a_cloudevent() -> None:
    doc = wire()
    del doc["specversion"]
    assert error_code(raw(doc)) == "not_cloudevent"


def test_another_specversion_is_not_a_cloudevent() -> None:
    assert error_code(raw(wire(specversion="0.3"))) == "not_cloudevent"


def test_a_type_nobody_knows_or_this_consumer_does_not_take_is_unknown_type() -> None:
    assert error_code(raw(wire(type="billing.charge.posted.v9"))) == "unknown_type"
    only = frozenset({"complaint.filed.v1"})
    assert error_code(raw(wire()), accept=only) == "unknown_type"
    assert decode(raw(wire()), accept=frozenset({"billing.charge.posted.v1"}))


def test_data_that_fails_its_model_is_invalid_data_with_details_but_no_values() -> None:
    with pytest.raises(ContractError) as info:
        decode(raw(wire(charge("4.99", customer_id="", kind="gift"))))
    assert info.value.code == "invalid_data"
    assert {d["loc"] for d in info.value.details} == {"customer_id", "kind"}
    assert "gift" not in json.dumps(info.value.details)  # inputs may be personal data


def test_a_value_over_the_size_limit_is_too_large_before_it_is_parsed() -> None:
    big = raw(wire(charge("4.99", description="x" * 1_500)))
    assert error_code(big, max_bytes=1_000) == "too_large"
    assert error_code(b"{" * 1_001_000) == "too_large"  # the default limit, ~1 MB


# --------------------------------------------------------------------------- encode / new_event


def test_an_encoded_event_decodes_to_the_same_event() -> None:
    data = ChargeFlagged(
        charge_id="ch-1",
        customer_id="cust-0042",
        amount=Decimal("3000"),
        currency="JPY",
        reason={"code": "duplicate", "text": "Charged twice"},
    )
    event = new_event(data, source="recovery-service", time=NOW, subject="cust-0042")
    decoded = decode(encode(event))
    assert decoded.envelope == event
    assert decoded.data == data
    assert json.loads(encode(event))["data"]["amount"] == "3000"
    assert "replay" not in json.loads(encode(event))  # unset optional attributes are omitted


def test_new_event_carries_a_uuid_the_type_the_subject_and_correlation_and_causation() -> None:
    data = SlaWarning(case_id="case-1", sla_deadline=NOW, at=NOW)
    event = new_event(
        data,
        source="recovery-service",
        time=NOW,
        subject="cust-0042",
        correlation_id="cmp-1",
        causation_id="evt-0",
    )
    assert uuid.UUID(event.id)
    assert event.type == "recovery.sla.warning.v1"
    assert (event.subject, event.correlationid, event.causationid) == (
        "cust-0042",
        "cmp-1",
        "evt-0",
    )
    doc = json.loads(encode(event))
    assert (doc["correlationid"], doc["causationid"]) == ("cmp-1", "evt-0")
    assert doc["specversion"] == "1.0"
    assert doc["time"].endswith("Z")
    other = new_event(data, source="recovery-service", time=NOW, subject="cust-0042")
    assert other.id != event.id


def test_cloudevent_is_immutable() -> None:
    event = CloudEvent.model_validate(wire())
    with pytest.raises(ValidationError):
        event.id = "changed"  # type: ignore[misc]


# --------------------------------------------------------------------------- dead letters


def dead(value: bytes | None, error: ContractError) -> DeadLettered:
    event = dead_letter(
        error,
        topic="billing.charges",
        partition=2,
        offset=41,
        key=b"cust-0042",
        value=value,
        source="recovery-service",
        now=NOW,
    )
    decoded = decode(encode(event), accept=frozenset({"recovery.deadletter.v1"}))
    assert decoded.envelope.subject == "cust-0042"
    assert isinstance(decoded.data, DeadLettered)
    return decoded.data


def test_a_dead_letter_keeps_a_text_value_as_text_with_the_reason_and_where_it_was() -> None:
    value = raw(wire(charge("4.99", currency="usd")))
    with pytest.raises(ContractError) as info:
        decode(value)
    letter = dead(value, info.value)
    assert (letter.original.value, letter.original.value_encoding) == (value.decode(), "text")
    assert (letter.original.topic, letter.original.partition, letter.original.offset) == (
        "billing.charges",
        2,
        41,
    )
    assert letter.original.key == "cust-0042"
    assert letter.error.code == "invalid_data"
    assert letter.error.details == info.value.details
    assert letter.received_at == NOW


def test_a_dead_letter_keeps_a_binary_value_as_base64() -> None:
    value = b"\x00\xff\xfe binary"
    with pytest.raises(ContractError) as info:
        decode(value)
    letter = dead(value, info.value)
    assert letter.original.value_encoding == "base64"
    assert base64.b64decode(letter.original.value) == value
    assert letter.error.code == "not_json"


def test_a_dead_letter_of_an_empty_value_is_an_empty_text() -> None:
    letter = dead(None, ContractError("not_json", "empty message value"))
    assert (letter.original.value, letter.original.value_encoding) == ("", "text")
