"""Events a notifier test needs, with every field a test does not care about filled in."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.common.contract.envelope import CloudEvent, new_event
from services.common.contract.events import (
    CaseEscalated,
    Customer,
    DecisionMade,
    EventData,
    Person,
    PolicyRef,
    Reason,
    Remedy,
)

DECIDED_AT = datetime(2026, 11, 22, 10, 15, tzinfo=UTC)
DUE_BY = datetime(2026, 11, 22, 18, 30, tzinfo=UTC)
VOUCHER_EXPIRES = datetime(2027, 11, 22, 23, 59, tzinfo=UTC)

OWNER = Person(id="owner-7", name="Lucía Gómez", email="lucia.gomez@care.example.com")

REMEDIES: dict[str, Remedy] = {
    "refund": Remedy(
        type="refund",
        charge_id="ch-000",
        amount="4.99",
        currency="USD",
        settlement="3-5 business days",
    ),
    "charge_waiver": Remedy(type="charge_waiver", charge_id="ch-003", amount="2.50", currency="USD"),
    "voucher": Remedy(
        type="voucher",
        amount="20.00",
        currency="USD",
        voucher_code="SORRY-4F7K",
        expires_at=VOUCHER_EXPIRES,
    ),
    "replacement": Remedy(type="replacement", charge_id="ch-002"),
    "repair": Remedy(type="repair", charge_id="ch-002"),
    "cancellation": Remedy(
        type="cancellation",
        charge_id="ch-004",
        amount="12.00",
        currency="USD",
        settlement="3-5 business days",
    ),
}


def customer(locale: str = "en-US", name: str = "Luis Botero") -> Customer:
    return Customer(id="cust-0042", name=name, email="luis@example.org", locale=locale)


def decision(
    *,
    locale: str = "en-US",
    remedies: list[Remedy] | None = None,
    outcome: str = "resolved",
    within_sla: bool = True,
    reasons: list[str] | None = None,
    name: str = "Luis Botero",
) -> DecisionMade:
    fields: dict[str, Any] = {
        "case_id": "case-0001",
        "complaint_id": "cmp-0001",
        "customer": customer(locale, name),
        "outcome": outcome,
        "remedies": [REMEDIES["refund"]] if remedies is None else remedies,
        "reasons": [Reason(code="r", text=t) for t in (reasons or ["The film kept failing to play."])],
        "policy": PolicyRef(id="default", version="1", rule="failed-delivery"),
        "decided_by": "policy" if outcome == "resolved" else "agent:ag-3",
        "case_owner": OWNER,
        "decided_at": DECIDED_AT,
        "sla_deadline": DECIDED_AT,
        "within_sla": within_sla,
    }
    return DecisionMade.model_validate(fields)


def escalation(*, locale: str = "en-US", with_customer: bool = True, with_owner: bool = True) -> CaseEscalated:
    return CaseEscalated(
        case_id="case-0001",
        reason=Reason(code="over-limit", text="Claim above the automatic limit."),
        priority="high",
        assignee="owner-7",
        due_by=DUE_BY,
        complaint_id="cmp-0001",
        customer=customer(locale) if with_customer else None,
        case_owner=OWNER if with_owner else None,
    )


def envelope(data: EventData, event_id: str = "9b2f6a4e-1c0d-4c55-9a1f-0d1b5f3f2a10") -> CloudEvent:
    return new_event(
        data,
        source="recovery-service",
        time=DECIDED_AT,
        subject="cust-0042",
        event_id=event_id,
        correlation_id="cmp-0001",
    )
