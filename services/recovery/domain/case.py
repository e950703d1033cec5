"""A case: the state of one complaint (and its repeat contacts), folded from its events.

``apply(case, event)`` is the only way state changes, so a live run, a replay and a
what-if re-run rebuild exactly the same case from the same stream. The stream of a case
begins with ``CaseOpened`` followed by the first ``ContactAdded``; both are written in one
append, so a case read back always has at least one complaint.

Status::

    open ──► awaiting_charge ──► escalated ──► decided
      │            │                 ▲  │         │
      └────────────┴─────────────────┘  └─► decided ─┘ (a repeat contact may reopen it)
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from services.common.contract.construct import constructor
from services.common.contract.events import (
    CalendarRef,
    CaseEscalated,
    CaseOpened,
    Category,
    ComplaintFiled,
    Customer,
    DecisionMade,
    EventData,
    Person,
    Priority,
    Reason,
    SlaBreached,
    SlaWarning,
)
from services.common.contract.ids import uuid5_str
from services.recovery.domain.errors import InvalidStream
from services.recovery.domain.events import (
    CaseAssigned,
    ChargeAwaited,
    ChargeLinked,
    ContactAdded,
    DecisionApproved,
    DecisionProposed,
    DecisionRejected,
    EffortVoucherOwed,
    NoteAdded,
)
from services.recovery.domain.facts import ChargeFacts

Status = Literal["open", "awaiting_charge", "escalated", "decided"]

# A fixed namespace: case ids must be the same on every machine and in every replay.
CASE_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:service-recovery:case")


def case_id_for(complaint: ComplaintFiled) -> str:
    """The case a complaint belongs to: a UUID derived from what it is about.

    Customer id + charge id if the complaint names a charge, else customer id + order id,
    else the complaint id alone (a complaint about nothing identifiable is its own case).
    The charge wins over the order, so a complaint naming both joins the charge's case.
    """
    customer = complaint.customer.id
    if complaint.charge_id:
        key = f"charge\x1f{customer}\x1f{complaint.charge_id}"
    elif complaint.order_id:
        key = f"order\x1f{customer}\x1f{complaint.order_id}"
    else:
        key = f"complaint\x1f{complaint.complaint_id}"
    return _case_uuid(key)


@functools.lru_cache(maxsize=8192)
def _case_uuid(key: str) -> str:
    # The application and the domain both ask for a complaint's case while deciding it.
    return uuid5_str(CASE_NAMESPACE, key)


class Escalation(BaseModel):
    """The case's current escalation: why, how urgent, who has it and by when (the customer's
    promise, and the person's deadline on the assignee's team calendar when it has one)."""

    model_config = ConfigDict(frozen=True)

    reason: Reason
    priority: Priority
    assignee: str
    due_by: AwareDatetime
    person_due_by: AwareDatetime | None = None
    person_warning_at: AwareDatetime | None = None
    calendar: CalendarRef | None = None


class Case(BaseModel):
    """Everything the decisions need to know about one case."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    case_id: str
    customer_id: str
    category: Category
    owner: Person
    sla_deadline: AwareDatetime
    status: Status = "open"
    complaints: tuple[ComplaintFiled, ...] = ()
    charge: ChargeFacts | None = None
    awaiting_charge_until: AwareDatetime | None = None
    escalation: Escalation | None = None
    warning_sent: bool = False
    breached: bool = False
    # The breach fallback referred the case to a supervisor: it does not run again.
    fallen_back: bool = False
    decisions: tuple[DecisionMade, ...] = ()
    effort_voucher_owed: EffortVoucherOwed | None = None
    effort_voucher_granted: bool = False
    vouchers_issued: int = 0
    # An agent's decision waiting for a supervisor's approval (the case stays escalated).
    pending: DecisionProposed | None = None

    @property
    def first_complaint(self) -> ComplaintFiled:
        """The complaint that opened the case (the one the SLA counts from)."""
        if not self.complaints:
            raise InvalidStream(f"case {self.case_id} has no complaint")
        return self.complaints[0]

    @property
    def latest_complaint(self) -> ComplaintFiled:
        """The most recent contact: the one a decision now answers."""
        if not self.complaints:
            raise InvalidStream(f"case {self.case_id} has no complaint")
        return self.complaints[-1]

    @property
    def customer(self) -> Customer:
        """The customer as of the latest contact (a newer locale or email wins)."""
        return self.latest_complaint.customer

    @property
    def filed_at(self) -> AwareDatetime:
        """When the first complaint was filed."""
        return self.first_complaint.filed_at

    @property
    def complaint_ids(self) -> frozenset[str]:
        """Every complaint id on the case (a duplicate delivery is recognised by these)."""
        return frozenset(c.complaint_id for c in self.complaints)

    @property
    def contacts(self) -> int:
        """How many times the customer has complained about this charge or order."""
        return len(self.complaints)

    @property
    def charge_id(self) -> str | None:
        """The charge the case is about, if any."""
        return self.first_complaint.charge_id

    @property
    def order_id(self) -> str | None:
        """The order the case is about, if any."""
        return self.first_complaint.order_id

    @property
    def is_decided(self) -> bool:
        """True once a decision closed the case (until a repeat contact reopens it)."""
        return self.status == "decided"

    @property
    def listens_for_charge(self) -> bool:
        """True while the arrival of the case's charge must be told to it: it waited for the
        charge and is not decided (a wait that ran out into an escalation still wants the
        charge linked, for the person or the breach fallback)."""
        return self.awaiting_charge_until is not None and self.charge_id is not None and not self.is_decided


def _evolve(case: Case, update: dict[str, object]) -> Case:
    """``case.model_copy(update=update)`` without the generic copy machinery: ``apply`` runs
    for every event of every case the service loads or decides, so this is a hot path. Like
    ``model_copy`` it does not validate ``update``; the values come from validated events."""
    new = Case.__new__(Case)
    object.__setattr__(new, "__dict__", {**case.__dict__, **update})
    object.__setattr__(new, "__pydantic_fields_set__", case.__pydantic_fields_set__ | update.keys())
    object.__setattr__(new, "__pydantic_extra__", None)
    object.__setattr__(new, "__pydantic_private__", None)
    return new


def _opened(event: CaseOpened) -> Case:
    return constructor(Case)(
        case_id=event.case_id,
        customer_id=event.customer_id,
        category=event.category,
        owner=event.case_owner,
        sla_deadline=event.sla_deadline,
    )


def _escalated(case: Case, event: CaseEscalated) -> Case:
    update: dict[str, object] = {
        "status": "escalated",
        "escalation": constructor(Escalation)(
            reason=event.reason,
            priority=event.priority,
            assignee=event.assignee,
            due_by=event.due_by,
            person_due_by=event.person_due_by,
            person_warning_at=event.person_warning_at,
            calendar=event.calendar,
        ),
    }
    if event.reason.code == "sla_breached":
        update["fallen_back"] = True
    if event.due_by != case.sla_deadline:
        # A reopened case gets a fresh SLA, and with it a fresh warning, breach and fallback.
        update |= {"sla_deadline": event.due_by, "warning_sent": False, "breached": False, "fallen_back": False}
    return _evolve(case, update)


def _decided(case: Case, event: DecisionMade) -> Case:
    vouchers = sum(1 for r in event.remedies if r.type == "voucher")
    return _evolve(
        case,
        {
            "status": "decided",
            "decisions": (*case.decisions, event),
            "vouchers_issued": case.vouchers_issued + vouchers,
            "awaiting_charge_until": None,
            "effort_voucher_granted": case.effort_voucher_owed is not None,
            "pending": None,
        },
    )


def apply(case: Case | None, event: EventData) -> Case:
    """The case after ``event``; raise :class:`InvalidStream` for an event out of place."""
    if type(event) is CaseOpened:
        if case is not None:
            raise InvalidStream(f"case {event.case_id} opened twice")
        return _opened(event)
    if case is None:
        raise InvalidStream(f"{event.TYPE} before the case was opened")
    if getattr(event, "case_id", case.case_id) != case.case_id:
        raise InvalidStream(f"{event.TYPE} of another case in case {case.case_id}")
    # By exact type, one dict look-up: isinstance on pydantic models goes through ABCMeta,
    # and this runs for every event of every case loaded or decided.
    step = _STEPS.get(type(event))
    if step is None:
        raise InvalidStream(f"{event.TYPE} does not belong in a case stream")
    return step(case, event)


def _assigned(case: Case, event: CaseAssigned) -> Case:
    if case.escalation is None:
        raise InvalidStream(f"case {case.case_id} assigned while not escalated")
    return _evolve(case, {"escalation": case.escalation.model_copy(update={"assignee": event.assignee})})


def _charge_linked(case: Case, event: ChargeLinked) -> Case:
    # The wait is over; a case that waited is open again until its decision follows.
    status = "open" if case.status == "awaiting_charge" else case.status
    return _evolve(case, {"charge": event.charge, "awaiting_charge_until": None, "status": status})


_STEPS: dict[type[EventData], Callable[[Case, Any], Case]] = {
    ContactAdded: lambda case, e: _evolve(case, {"complaints": (*case.complaints, e.complaint)}),
    ChargeAwaited: lambda case, e: _evolve(case, {"status": "awaiting_charge", "awaiting_charge_until": e.until}),
    ChargeLinked: _charge_linked,
    EffortVoucherOwed: lambda case, e: _evolve(case, {"effort_voucher_owed": e}),
    CaseEscalated: _escalated,
    DecisionMade: _decided,
    SlaWarning: lambda case, _: _evolve(case, {"warning_sent": True}),
    SlaBreached: lambda case, _: _evolve(case, {"breached": True}),
    DecisionProposed: lambda case, e: _evolve(case, {"pending": e}),
    DecisionApproved: lambda case, _: _evolve(case, {"pending": None}),
    DecisionRejected: lambda case, _: _evolve(case, {"pending": None}),
    CaseAssigned: _assigned,
    NoteAdded: lambda case, _: case,
}


def fold(events: Iterable[EventData]) -> Case | None:
    """The case built from its whole stream, or None for an empty stream."""
    case: Case | None = None
    for event in events:
        case = apply(case, event)
    return case
