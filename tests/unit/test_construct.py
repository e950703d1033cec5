"""Trusted constructors: names are still checked, values are not re-validated."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from services.common.contract.construct import constructor
from services.common.contract.events import DecisionMade, Reason, Remedy


def test_builds_the_model_validation_would_build() -> None:
    made = constructor(Remedy)(type="refund", charge_id="ch-1", amount=Decimal("4.99"), currency="USD")
    assert made == Remedy(type="refund", charge_id="ch-1", amount="4.99", currency="USD")
    # The same bytes on the wire, fields in the same order.
    assert made.model_dump_json() == Remedy.model_validate(made.model_dump()).model_dump_json()
    assert made.model_fields_set == {"type", "charge_id", "amount", "currency"}


def test_missing_and_unknown_fields_are_errors() -> None:
    build = constructor(Reason)
    with pytest.raises(TypeError, match=r"missing \['text'\]"):
        build(code="x")
    with pytest.raises(TypeError, match=r"unknown \['colour'\]"):
        build(code="x", text="y", colour="red")


def test_default_factories_give_a_fresh_value_each_time() -> None:
    class Bag(BaseModel):
        items: list[str] = Field(default_factory=list)
        label: str = "bag"

    build = constructor(Bag)
    first, second = build(), build()
    assert first == Bag()
    assert first.model_fields_set == set()
    assert first.items is not second.items
    assert build(label="box").model_dump_json() == '{"items":[],"label":"box"}'


def test_defaults_of_an_event_match_validation() -> None:
    reason = Reason(code="c", text="t")
    fields = {
        "case_id": "k", "complaint_id": "c", "customer": {"id": "u", "name": "N", "email": "n@example.com",
        "locale": "en-US"}, "outcome": "resolved", "reasons": [reason], "policy": {"id": "p", "version": "1",
        "rule": "r"}, "decided_by": "policy", "case_owner": {"id": "o", "name": "O", "email": "o@example.com"},
        "decided_at": "2026-01-01T00:00:00Z", "sla_deadline": "2026-01-01T10:00:00Z", "within_sla": True,
    }  # fmt: skip
    validated = DecisionMade.model_validate(fields)
    built = constructor(DecisionMade)(**{n: getattr(validated, n) for n in fields})
    assert built == validated  # remedies defaulted to a fresh empty list in both


def test_models_that_need_their_validation_are_refused() -> None:
    class Secret(BaseModel):
        _hidden: int = PrivateAttr(default=0)

    with pytest.raises(TypeError, match="needs its validation"):
        constructor(Secret)


def test_a_model_that_keeps_extra_fields_is_built_with_none() -> None:
    class Open(BaseModel):
        model_config = ConfigDict(extra="allow")
        a: int

    built = constructor(Open)(a=1)
    assert built == Open(a=1)
    assert built.model_extra == {}
    assert built.model_dump() == {"a": 1}
