"""Builders for the recovery domain tests: a controlled clock, complaints, charges, runs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from services.common.contract.events import (
    CaseEscalated,
    ComplaintFiled,
    Customer,
    DecisionMade,
    EventData,
)
from services.common.contract.money import minor_units
from services.recovery.domain import (
    AnyCommand,
    Case,
    ChargeFacts,
    CustomerHistory,
    FileComplaint,
    Policy,
    Roster,
    VoucherKey,
    apply,
    decide,
    load_policy,
    load_roster,
)

E = TypeVar("E", bound=EventData)

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
POLICY: Policy = load_policy()
ROSTER: Roster = load_roster()
CURRENCIES = ("USD", "EUR", "COP")
CODES = VoucherKey(b"unit-tests-voucher-secret-of-32-bytes+")


def one_unit(currency: str) -> Decimal:
    """The smallest amount of ``currency`` (0.01 USD, 1 JPY)."""
    return Decimal(1).scaleb(-minor_units(currency))


def customer(customer_id: str = "cust-1", locale: str = "en-US") -> Customer:
    return Customer(id=customer_id, name="Ana Pérez", email="ana@example.com", locale=locale)


def complaint(category: str = "delivery_failed", **fields: Any) -> ComplaintFiled:
    data: dict[str, Any] = {
        "complaint_id": "cmp-1",
        "customer": customer(fields.pop("customer_id", "cust-1"), fields.pop("locale", "en-US")).model_dump(),
        "channel": "web",
        "category": category,
        "charge_id": "ch-1",
        "description": "It does not work.",
        "filed_at": T0,
    }
    data.update(fields)
    return ComplaintFiled.model_validate(data)


def charge(amount: str | Decimal = "4.99", currency: str = "USD", **fields: Any) -> ChargeFacts:
    data: dict[str, Any] = {
        "charge_id": "ch-1",
        "customer_id": "cust-1",
        "amount": str(amount),
        "currency": currency,
        "kind": "purchase",
        "product_type": "digital",
        "posted_at": T0 - timedelta(days=1),
    }
    data.update(fields)
    return ChargeFacts.model_validate(data)


def history(*concession_times: datetime, previous_owner_id: str | None = None) -> CustomerHistory:
    return CustomerHistory(concession_times=concession_times, previous_owner_id=previous_owner_id)


def run(
    case: Case | None,
    command: AnyCommand,
    now: datetime = T0,
    policy: Policy = POLICY,
    roster: Roster = ROSTER,
) -> tuple[list[EventData], Case]:
    """Decide, then fold the events onto the case: what the application does."""
    events = decide(case, command, now, policy, roster, CODES)
    after = case
    for event in events:
        after = apply(after, event)
    assert after is not None
    return events, after


def file(
    the_complaint: ComplaintFiled,
    the_charge: ChargeFacts | None = None,
    *,
    case: Case | None = None,
    now: datetime | None = None,
    past: CustomerHistory | None = None,
    policy: Policy = POLICY,
) -> tuple[list[EventData], Case]:
    command = FileComplaint(complaint=the_complaint, charge=the_charge, history=past or CustomerHistory())
    return run(case, command, now or the_complaint.filed_at, policy)


def of_type(events: Sequence[EventData], kind: type[E]) -> list[E]:
    return [e for e in events if isinstance(e, kind)]


def only(events: Sequence[EventData], kind: type[E]) -> E:
    found = of_type(events, kind)
    assert len(found) == 1, f"expected one {kind.__name__}, got {[type(e).__name__ for e in events]}"
    return found[0]


def decision(events: Sequence[EventData]) -> DecisionMade:
    assert not of_type(events, CaseEscalated), "expected a decision, not an escalation"
    return only(events, DecisionMade)


def escalation(events: Sequence[EventData]) -> CaseEscalated:
    assert not of_type(events, DecisionMade), "expected an escalation, not a decision"
    return only(events, CaseEscalated)


def limits(currency: str, name: str, policy: Policy = POLICY) -> Decimal:
    value: Decimal = getattr(policy.limits[currency], name)
    return value
