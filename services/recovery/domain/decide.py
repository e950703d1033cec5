"""The one entry point of the recovery domain: ``decide(case, command, now, policy, roster, codes)``.

It returns the events the command causes (possibly none) and never reads the clock or
anything else (``codes`` gives the voucher codes, from the service's secret: see
``remedies.py``): the same inputs always give the same events, so a replay or a what-if
re-run with another policy reproduces (or revises) every past decision.

Complaints about one charge or order share a case (:func:`case_id_for`). A first complaint
opens the case (``CaseOpened`` with its owner and SLA deadline, then ``ContactAdded``) and
is decided at once, or waits up to ``charge_wait_minutes`` for a charge it names but the
service has not seen, when its rule needs that charge; when the wait runs out the case
is decided with what is known (rules that need the charge refer it as
``charge_not_found``; a cancellation is confirmed without the refund of the unused
period, which only the charge can show). A later complaint is a repeat
contact: recorded, and at ``repeat_contact_threshold`` contacts the case goes to a person
as ``high`` (re-prioritised if already escalated, reopened with a fresh SLA if decided)
with an effort voucher owed to its next decision.
"""

from __future__ import annotations

from datetime import datetime

from services.common.contract.events import EventData
from services.recovery.domain import build
from services.recovery.domain.agent import add_note, agent_decide, approve_decision, assign_case, reject_decision
from services.recovery.domain.anomaly import assess_charge
from services.recovery.domain.case import Case, apply, case_id_for, fold
from services.recovery.domain.commands import (
    AddNote,
    AgentDecide,
    AnyCommand,
    ApproveDecision,
    AssignCase,
    ChargeArrived,
    FileComplaint,
    FireTimer,
    FlagCharge,
    RejectDecision,
)
from services.recovery.domain.errors import CaseMismatch
from services.recovery.domain.facts import ChargeFacts, CustomerHistory
from services.recovery.domain.policy import Policy
from services.recovery.domain.remedies import VoucherCodes
from services.recovery.domain.roster import Roster, assign_owner
from services.recovery.domain.rules import needs_charge
from services.recovery.domain.settle import (
    effort_voucher_owed,
    escalated,
    is_repeat,
    repeat_referral,
    settle,
)
from services.recovery.domain.sla import fire_timer


def decide(
    case: Case | None, command: AnyCommand, now: datetime, policy: Policy, roster: Roster, codes: VoucherCodes
) -> list[EventData]:
    """The events ``command`` causes on ``case`` (None: no case yet) at ``now``."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must carry a time zone")
    match command:
        case FileComplaint():
            return file_complaint(case, command, now, policy, roster, codes)
        case ChargeArrived():
            return charge_arrived(case, command, now, policy, roster, codes)
        case FireTimer():
            return fire_timer(case, command, now, policy, roster, codes)
        case AgentDecide():
            return agent_decide(case, command, now, policy, codes)
        case ApproveDecision():
            return approve_decision(case, command, now, policy, codes)
        case RejectDecision():
            return reject_decision(case, command, now)
        case AssignCase():
            return assign_case(case, command, now)
        case AddNote():
            return add_note(case, command, now)
        case FlagCharge():
            flagged = assess_charge(command.charge, policy)
            return [] if flagged is None else [flagged]


def file_complaint(
    case: Case | None, command: FileComplaint, now: datetime, policy: Policy, roster: Roster, codes: VoucherCodes
) -> list[EventData]:
    """Open the case or add a contact, then decide what the contact calls for."""
    complaint, charge = command.complaint, command.charge
    case_id = case_id_for(complaint)
    if charge is not None and charge.charge_id != complaint.charge_id:
        raise CaseMismatch(f"charge {charge.charge_id} is not the one the complaint names")
    if case is None:
        customer = complaint.customer
        owner = assign_owner(roster, customer.id, customer.locale, command.history.previous_owner_id)
        opening: list[EventData] = [
            build.case_opened(
                case_id=case_id,
                customer_id=customer.id,
                complaint_id=complaint.complaint_id,
                category=complaint.category,
                case_owner=owner,
                sla_deadline=complaint.filed_at + policy.sla,
            ),
            build.contact_added(case_id=case_id, contact=1, complaint=complaint),
        ]
        opened = fold(opening)
        assert opened is not None  # two events were folded
        return [*opening, *_first_steps(opened, charge, now, policy, roster, command.history, codes)]
    if case.case_id != case_id:
        raise CaseMismatch(f"complaint {complaint.complaint_id} belongs to case {case_id}")
    if complaint.complaint_id in case.complaint_ids:
        return []  # the same complaint delivered again
    contact = build.contact_added(case_id=case_id, contact=case.contacts + 1, complaint=complaint)
    after = apply(case, contact)
    return [contact, *_repeat_steps(after, charge, now, policy, roster, command.history, codes)]


def _first_steps(
    case: Case,
    charge: ChargeFacts | None,
    now: datetime,
    policy: Policy,
    roster: Roster,
    history: CustomerHistory,
    codes: VoucherCodes,
) -> list[EventData]:
    complaint = case.first_complaint
    if charge is None and complaint.charge_id is not None and needs_charge(complaint):
        until = complaint.filed_at + policy.charge_wait
        if now < until and not is_repeat(case, policy):
            return [build.charge_awaited(case_id=case.case_id, charge_id=complaint.charge_id, until=until)]
    return settle(case, charge, now, policy, roster, history, codes)


def _repeat_steps(
    case: Case,
    charge: ChargeFacts | None,
    now: datetime,
    policy: Policy,
    roster: Roster,
    history: CustomerHistory,
    codes: VoucherCodes,
) -> list[EventData]:
    repeat = is_repeat(case, policy)
    if case.status in ("open", "awaiting_charge"):
        return settle(case, charge, now, policy, roster, history, codes) if charge is not None or repeat else []
    events: list[EventData] = []
    if charge is not None and case.charge is None and case.status == "escalated":
        events.append(build.charge_linked(case_id=case.case_id, charge=charge))
    if not repeat:
        return events
    owed = effort_voucher_owed(case, policy)
    if owed is not None:
        events.append(owed)
        case = apply(case, owed)
    if case.status == "decided":
        # Reopen with a fresh SLA from this contact: the customer is still not satisfied.
        due_by = max(case.sla_deadline, case.latest_complaint.filed_at + policy.sla)
        events.append(escalated(case, repeat_referral(case), roster, policy, due_by))
    elif case.escalation is not None and case.escalation.priority == "normal":
        events.append(escalated(case, repeat_referral(case), roster, policy))
    return events


def charge_arrived(
    case: Case | None, command: ChargeArrived, now: datetime, policy: Policy, roster: Roster, codes: VoucherCodes
) -> list[EventData]:
    """Decide a case that was waiting for this charge; note it on an escalated one."""
    charge = command.charge
    if case is None:
        return []
    if charge.charge_id != case.charge_id:
        raise CaseMismatch(f"charge {charge.charge_id} is not the charge of case {case.case_id}")
    if case.status == "awaiting_charge":
        return settle(case, charge, now, policy, roster, command.history, codes)
    if case.status == "escalated" and case.charge is None:
        # A person (or the breach fallback) will want to see it.
        return [build.charge_linked(case_id=case.case_id, charge=charge)]
    return []
