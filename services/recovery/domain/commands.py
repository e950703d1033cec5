"""The commands the recovery domain decides on: frozen, imperative, one per intent.

Each carries the facts the application looked up for it (the charge with its medians, the
customer's history); the domain reads nothing else.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.common.contract.events import ComplaintFiled, Reason, Remedy
from services.recovery.domain.facts import ChargeFacts, CustomerHistory

TimerKind = Literal["sla_warning", "sla_breach", "sla_fallback", "charge_wait"]


class Command(BaseModel):
    """Base of every command: frozen, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class FileComplaint(Command):
    """Take in a complaint: open its case, or add it to the case as a repeat contact.

    ``charge``: the facts of the charge the complaint names, if the service has seen it.
    """

    complaint: ComplaintFiled
    charge: ChargeFacts | None = None
    history: CustomerHistory = Field(default_factory=CustomerHistory)


class ChargeArrived(Command):
    """A charge a case was waiting for has been posted: decide the case now."""

    charge: ChargeFacts
    history: CustomerHistory = Field(default_factory=CustomerHistory)


class FireTimer(Command):
    """A timer from :func:`~services.recovery.domain.sla.pending_timers` is due.

    ``charge``: the case's charge as read now (its ledger up to date), if it has one.
    """

    kind: TimerKind
    due_at: AwareDatetime
    history: CustomerHistory = Field(default_factory=CustomerHistory)
    charge: ChargeFacts | None = None


class AgentDecide(Command):
    """A person's decision on an escalated case: remedies, or a reason to decline.

    ``charge``: the case's charge as read now (its ledger up to date), if it has one.
    ``role``: an ``agent``'s decision over the approval limits or on an urgent case is only
    proposed (``DecisionProposed``) until a supervisor approves it; a supervisor's is made.
    """

    agent_id: str = Field(min_length=1, max_length=256)
    role: Literal["agent", "supervisor"] = "supervisor"
    remedies: tuple[Remedy, ...] = ()
    decline_reason: Reason | None = None
    note: str | None = Field(default=None, max_length=2000)
    charge: ChargeFacts | None = None


class ApproveDecision(Command):
    """A supervisor approves the case's pending decision (someone else's), on the charge's
    ledger as read now."""

    supervisor_id: str = Field(min_length=1, max_length=256)
    charge: ChargeFacts | None = None


class RejectDecision(Command):
    """A supervisor rejects the case's pending decision: the case waits for another."""

    supervisor_id: str = Field(min_length=1, max_length=256)
    note: str | None = Field(default=None, max_length=2000)


class AssignCase(Command):
    """A person claims an escalated case (``assignee`` their own id) or hands it to another."""

    person_id: str = Field(min_length=1, max_length=256)
    assignee: str = Field(min_length=1, max_length=256, pattern=r"^\S+$")


class AddNote(Command):
    """A person's note on a case, with no decision."""

    person_id: str = Field(min_length=1, max_length=256)
    note: str = Field(min_length=1, max_length=2000)


class FlagCharge(Command):
    """Check a charge on arrival, before anyone complains (the anomaly rule)."""

    charge: ChargeFacts


AnyCommand = (
    FileComplaint
    | ChargeArrived
    | FireTimer
    | AgentDecide
    | ApproveDecision
    | RejectDecision
    | AssignCase
    | AddNote
    | FlagCharge
)
