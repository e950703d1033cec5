"""Internal event types: recorded in the store, never published.

They carry what a case needs to be rebuilt and that the contract's events do not: the
full complaint of every contact, the charge facts a decision read, a wait for a charge, an
effort voucher owed, an agent's decision waiting for a supervisor's approval and what the
supervisor did with it, who has the case and the people's notes; and, on a charge's own
stream, the usual amounts it is judged by.
``TOPIC = "internal"`` tells the outbox not to publish them. :data:`CASE_EVENT_TYPES` maps
every type a case stream may hold to its model, for the store.
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
    Reason,
    Remedy,
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
    """The charge facts (with the medians) that the case's decisions read; again, with the
    charge's ledger as read then, before a decision on a case whose ledger has moved."""

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


class DecisionProposed(EventData):
    """An agent's decision that needs a supervisor's approval (over the approval limits, or on
    an urgent case): nothing is granted until a different supervisor approves it."""

    TYPE: ClassVar[str] = "recovery.decision.proposed.v1"
    TOPIC: ClassVar[str] = INTERNAL

    case_id: str = Field(min_length=1)
    proposed_by: str = Field(min_length=1, description="agent:<person id>")
    remedies: tuple[Remedy, ...] = ()
    decline_reason: Reason | None = None
    note: str | None = Field(default=None, max_length=2000)
    needs_approval: Reason = Field(description="why: over_approval_limit or urgent_case")
    proposed_at: AwareDatetime


class DecisionApproved(EventData):
    """A supervisor approved the pending decision; its ``DecisionMade`` follows at once."""

    TYPE: ClassVar[str] = "recovery.decision.approved.v1"
    TOPIC: ClassVar[str] = INTERNAL

    case_id: str = Field(min_length=1)
    proposed_by: str = Field(min_length=1)
    approved_by: str = Field(min_length=1, description="agent:<person id>, never the proposer")
    approved_at: AwareDatetime


class DecisionRejected(EventData):
    """A supervisor rejected the pending decision: the case waits for a decision again."""

    TYPE: ClassVar[str] = "recovery.decision.rejected.v1"
    TOPIC: ClassVar[str] = INTERNAL

    case_id: str = Field(min_length=1)
    proposed_by: str = Field(min_length=1)
    rejected_by: str = Field(min_length=1)
    note: str | None = Field(default=None, max_length=2000)
    rejected_at: AwareDatetime


class CustomerErased(EventData):
    """A customer was forgotten: their key destroyed and the plain copies of their personal
    data purged (``services/recovery/erasure.py``). Ids and counts only, never the data; on
    the customer's own stream, ``customer-<id>``."""

    TYPE: ClassVar[str] = "recovery.customer.erased.v1"
    TOPIC: ClassVar[str] = INTERNAL

    customer_id: str = Field(min_length=1)
    erased_by: str = Field(min_length=1, description="agent:<person id>, or operator for the command line")
    key_destroyed: bool = Field(description="false: the customer had no key (forgotten already, or never stored)")
    cases: int = Field(ge=0, description="the customer's cases, which keep their decisions and money")
    purged: dict[str, int] = Field(default_factory=dict, description="rows purged, by table")
    erased_at: AwareDatetime


class CaseAssigned(EventData):
    """A person took the escalated case (a claim: ``assignee`` is ``assigned_by``'s own id) or
    handed it to someone else (a reassignment)."""

    TYPE: ClassVar[str] = "recovery.case.assigned.v1"
    TOPIC: ClassVar[str] = INTERNAL

    case_id: str = Field(min_length=1)
    assignee: str = Field(min_length=1, max_length=256, description="the person's id, as an escalation names it")
    assigned_by: str = Field(min_length=1, max_length=256, description="agent:<person id>")
    assigned_at: AwareDatetime


class NoteAdded(EventData):
    """A person's note on the case, with no decision."""

    TYPE: ClassVar[str] = "recovery.case.note_added.v1"
    TOPIC: ClassVar[str] = INTERNAL

    case_id: str = Field(min_length=1)
    by: str = Field(min_length=1, max_length=256, description="agent:<person id>")
    note: str = Field(min_length=1, max_length=2000)
    noted_at: AwareDatetime


class ChargeAssessed(EventData):
    """The usual amounts a charge is judged by, fixed when it arrived (in the charge's own
    stream, after the charge; none is recorded when there is nothing to compare it with)."""

    TYPE: ClassVar[str] = "recovery.charge.assessed.v1"
    TOPIC: ClassVar[str] = INTERNAL

    charge_id: str = Field(min_length=1)
    usual_customer_amount: Amount | None = None
    usual_all_amount: Amount | None = None


_CASE_INTERNAL_EVENT_TYPES: tuple[type[EventData], ...] = (
    ContactAdded,
    ChargeAwaited,
    ChargeLinked,
    EffortVoucherOwed,
    DecisionProposed,
    DecisionApproved,
    DecisionRejected,
    CaseAssigned,
    NoteAdded,
)
INTERNAL_EVENT_TYPES: tuple[type[EventData], ...] = (*_CASE_INTERNAL_EVENT_TYPES, ChargeAssessed, CustomerErased)
_PUBLISHED_CASE_EVENT_TYPES: tuple[type[EventData], ...] = (
    CaseOpened,
    CaseEscalated,
    DecisionMade,
    SlaWarning,
    SlaBreached,
)
CASE_EVENT_TYPES: dict[str, type[EventData]] = {
    model.TYPE: model for model in (*_PUBLISHED_CASE_EVENT_TYPES, *_CASE_INTERNAL_EVENT_TYPES)
}
