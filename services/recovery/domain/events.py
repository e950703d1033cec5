"""Internal event types: recorded in the case's stream, never published.

They carry what the case needs to be rebuilt and that the contract's events do not: the
full complaint of every contact, the charge facts a decision read, a wait for a charge, an
effort voucher owed. ``TOPIC = "internal"`` tells the outbox not to publish them.
:data:`CASE_EVENT_TYPES` maps every type a case stream may hold to its model, for the store.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import AwareDatetime, Field, model_validator

from services.common.contract.events import (
    CaseEscalated,
    CaseOpened,
    ComplaintFiled,
    DecisionMade,
    EventData,
    SlaBreached,
    SlaWarning,
)
from services.common.contract.money import Amount, Currency, check_minor_units
from services.recovery.domain.facts import ChargeFacts

INTERNAL = "internal"


class ContactAdded(EventData):
    """A complaint joined the case: the first one (right after ``CaseOpened``) or a repeat."""

    TYPE: ClassVar[str] = "recovery.case.contact_added.v1"
    TOPIC: ClassVar[str] = INTERNAL

    case_id: str = Field(min_length=1)
    contact: int = Field(ge=1, description="1 for the complaint that opened the case")
    complaint: ComplaintFiled


class ChargeAwaited(EventData):
    """The complaint names a charge not seen yet; the case waits for it until ``until``."""

    TYPE: ClassVar[str] = "recovery.case.charge_awaited.v1"
    TOPIC: ClassVar[str] = INTERNAL

    case_id: str = Field(min_length=1)
    charge_id: str = Field(min_length=1)
    until: AwareDatetime


class ChargeLinked(EventData):
    """The charge facts (with the medians) that the case's decisions read."""

    TYPE: ClassVar[str] = "recovery.case.charge_linked.v1"
    TOPIC: ClassVar[str] = INTERNAL

    case_id: str = Field(min_length=1)
    charge: ChargeFacts


class EffortVoucherOwed(EventData):
    """Repeat contact: the case's decision, whoever makes it, adds this voucher."""

    TYPE: ClassVar[str] = "recovery.case.effort_voucher_owed.v1"
    TOPIC: ClassVar[str] = INTERNAL

    case_id: str = Field(min_length=1)
    amount: Amount
    currency: Currency

    @model_validator(mode="after")
    def _money(self) -> EffortVoucherOwed:
        check_minor_units(self.amount, self.currency)
        return self


INTERNAL_EVENT_TYPES: tuple[type[EventData], ...] = (
    ContactAdded,
    ChargeAwaited,
    ChargeLinked,
    EffortVoucherOwed,
)
_PUBLISHED_CASE_EVENT_TYPES: tuple[type[EventData], ...] = (
    CaseOpened,
    CaseEscalated,
    DecisionMade,
    SlaWarning,
    SlaBreached,
)
CASE_EVENT_TYPES: dict[str, type[EventData]] = {
    model.TYPE: model for model in (*_PUBLISHED_CASE_EVENT_TYPES, *INTERNAL_EVENT_TYPES)
}
