"""A person's decision on an escalated case (through the ops interface).

It is an event like any other, ``decided_by: agent:<id>``; it closes the case, stops the
SLA clock, and carries the effort voucher when repeat contacts made one owed, whether the
person grants or declines. Only people decline; the machine never does.

The person's remedies are checked against the case's charge as the rules' are
(``ledger.checked``): on the case's charge only, in its currency, for its customer, and
refunds and waivers together at most what remains; a refusal names the field. A voucher's
code is the service's to issue: the one given is replaced by the case's next code.

Four eyes: an agent's decision that grants more money than the policy's
``approval_limits`` (refunds, waivers and vouchers together, per currency), or any agent's
decision on an urgent case, is only proposed (``DecisionProposed``): nothing is granted and
the SLA keeps running. A different supervisor approves it (``DecisionApproved``, then the
``DecisionMade`` in the proposer's name, on the charge's ledger as it is then) or rejects it
(``DecisionRejected``: the case waits for a decision again).

A person also claims an escalated case or hands it to another (``CaseAssigned``), and adds
notes to any case without deciding it (``NoteAdded``).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from services.common.contract.events import DecisionMade, EventData, Reason, Remedy
from services.recovery.domain.case import Case, apply
from services.recovery.domain.commands import AddNote, AgentDecide, ApproveDecision, AssignCase, RejectDecision
from services.recovery.domain.errors import (
    CaseNotAwaitingAgent,
    DecisionPending,
    InvalidAgentDecision,
    NoPendingDecision,
    SelfApproval,
)
from services.recovery.domain.events import (
    CaseAssigned,
    DecisionApproved,
    DecisionProposed,
    DecisionRejected,
    NoteAdded,
)
from services.recovery.domain.facts import ChargeFacts
from services.recovery.domain.ledger import checked, refreshed
from services.recovery.domain.policy import Policy
from services.recovery.domain.remedies import VoucherCodes
from services.recovery.domain.settle import decision_made, mint_for

AGENT_RULE = "agent-decision"


def agent_decide(
    case: Case | None, command: AgentDecide, now: datetime, policy: Policy, codes: VoucherCodes
) -> list[EventData]:
    """The agent's ``DecisionMade``, or ``DecisionProposed`` when it needs a supervisor's
    approval (after a ``ChargeLinked`` when the charge's ledger moved); raise if the case is
    not waiting for a person or a remedy is refused."""
    case = _awaiting(case)
    if case.pending is not None:
        raise DecisionPending(f"case {case.case_id} has a decision awaiting a supervisor's approval")
    if bool(command.remedies) == (command.decline_reason is not None):
        raise InvalidAgentDecision("give remedies to resolve, or a reason to decline, not both")
    by = f"agent:{command.agent_id}"
    case, linked = _on_ledger(case, command.charge)
    remedies = checked(case, command.remedies)
    needs = approval_needed(case, remedies, policy) if command.role == "agent" else None
    if needs is not None:
        proposed = DecisionProposed(case_id=case.case_id, proposed_by=by, remedies=remedies,
                                    decline_reason=command.decline_reason, note=command.note,
                                    needs_approval=needs, proposed_at=now)  # fmt: skip
        return [*linked, proposed]
    return [*linked, _made(case, remedies, command.decline_reason, command.note, by, now, policy, codes)]


def approve_decision(
    case: Case | None, command: ApproveDecision, now: datetime, policy: Policy, codes: VoucherCodes
) -> list[EventData]:
    """``DecisionApproved`` and the proposer's ``DecisionMade``, its remedies checked again on
    the charge's ledger as read now; raise :class:`SelfApproval` for the proposer."""
    case = _awaiting(case)
    proposal = case.pending
    if proposal is None:
        raise NoPendingDecision(f"case {case.case_id} has no decision awaiting approval")
    by = f"agent:{command.supervisor_id}"
    if by == proposal.proposed_by:
        raise SelfApproval("four eyes: a decision is approved by someone other than its proposer")
    case, linked = _on_ledger(case, command.charge)
    remedies = checked(case, proposal.remedies)
    approved = DecisionApproved(case_id=case.case_id, proposed_by=proposal.proposed_by, approved_by=by,
                                approved_at=now)  # fmt: skip
    case = apply(case, approved)
    made = _made(case, remedies, proposal.decline_reason, proposal.note, proposal.proposed_by, now, policy, codes)
    return [*linked, approved, made]


def reject_decision(case: Case | None, command: RejectDecision, now: datetime) -> list[EventData]:
    """``DecisionRejected``: the case waits for a decision again."""
    case = _awaiting(case)
    if case.pending is None:
        raise NoPendingDecision(f"case {case.case_id} has no decision awaiting approval")
    by = f"agent:{command.supervisor_id}"
    proposed_by = case.pending.proposed_by
    return [DecisionRejected(case_id=case.case_id, proposed_by=proposed_by, rejected_by=by, note=command.note,
                             rejected_at=now)]  # fmt: skip


def assign_case(case: Case | None, command: AssignCase, now: datetime) -> list[EventData]:
    """``CaseAssigned``: the escalated case is the assignee's to decide (nothing when it is
    theirs already)."""
    case = _awaiting(case)
    assert case.escalation is not None  # an escalated case has one
    if case.escalation.assignee == command.assignee:
        return []
    return [CaseAssigned(case_id=case.case_id, assignee=command.assignee, assigned_by=f"agent:{command.person_id}",
                         assigned_at=now)]  # fmt: skip


def add_note(case: Case | None, command: AddNote, now: datetime) -> list[EventData]:
    """``NoteAdded``, on any case."""
    if case is None:
        raise CaseNotAwaitingAgent("no such case")
    return [NoteAdded(case_id=case.case_id, by=f"agent:{command.person_id}", note=command.note, noted_at=now)]


def approval_needed(case: Case, remedies: tuple[Remedy, ...], policy: Policy) -> Reason | None:
    """Why an agent's decision with ``remedies`` needs a supervisor's approval, or None: the
    case is urgent, or its money (per currency) is over the approval limit, or in a currency
    without one."""
    if case.escalation is not None and case.escalation.priority == "urgent":
        return Reason(code="urgent_case", text="An urgent case: a supervisor approves its decision.")
    totals: dict[str, Decimal] = {}
    for r in remedies:
        if r.amount is not None and r.currency is not None:
            totals[r.currency] = totals.get(r.currency, Decimal(0)) + r.amount
    for currency, total in totals.items():
        limit = policy.approval_limits.get(currency)
        if limit is None or total > limit:
            within = f"the approval limit of {currency} {limit}" if limit is not None else "no approval limit"
            return Reason(code="over_approval_limit", text=f"{currency} {total} in remedies; {within}.")
    return None


def _awaiting(case: Case | None) -> Case:
    if case is None:
        raise CaseNotAwaitingAgent("no such case")
    if case.status != "escalated":
        raise CaseNotAwaitingAgent(f"case {case.case_id} is {case.status}, not escalated")
    return case


def _on_ledger(case: Case, charge: ChargeFacts | None) -> tuple[Case, list[EventData]]:
    """The case with its charge's ledger as read now (and the ``ChargeLinked`` saying so, when
    it moved)."""
    linked = refreshed(case, charge)
    return (case, []) if linked is None else (apply(case, linked), [linked])


def _made(
    case: Case,
    remedies: tuple[Remedy, ...],
    decline_reason: Reason | None,
    note: str | None,
    decided_by: str,
    now: datetime,
    policy: Policy,
    codes: VoucherCodes,
) -> DecisionMade:
    mint = mint_for(case, codes)
    remedies = tuple(mint.reissue(r) if r.type == "voucher" else r for r in remedies)
    notes = [Reason(code="agent_note", text=note)] if note else []
    if decline_reason is not None:
        reasons = (decline_reason, *notes)
    else:
        reasons = tuple(notes) or (Reason(code="agent_decision", text="Decided by a person after review."),)
    return decision_made(
        case,
        rule=AGENT_RULE,
        remedies=remedies,
        reasons=reasons,
        now=now,
        policy=policy,
        mint=mint,
        decided_by=decided_by,
        outcome="declined" if decline_reason is not None else "resolved",
    )
