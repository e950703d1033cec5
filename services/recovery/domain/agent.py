"""A person's decision on an escalated case (through the ops interface).

It is an event like any other, ``decided_by: agent:<id>``; it closes the case, stops the
SLA clock, and carries the effort voucher when repeat contacts made one owed, whether the
person grants or declines. Only people decline; the machine never does.

The person's remedies are checked against the case's charge as the rules' are
(``ledger.checked``): on the case's charge only, in its currency, for its customer, and
refunds and waivers together at most what remains; a refusal names the field. A voucher's
code is the service's to issue: the one given is replaced by the case's next code.
"""

from __future__ import annotations

from datetime import datetime

from services.common.contract.events import EventData, Reason
from services.recovery.domain.case import Case, apply
from services.recovery.domain.commands import AgentDecide
from services.recovery.domain.errors import CaseNotAwaitingAgent, InvalidAgentDecision
from services.recovery.domain.ledger import checked, refreshed
from services.recovery.domain.policy import Policy
from services.recovery.domain.remedies import VoucherCodes
from services.recovery.domain.settle import decision_made, mint_for

AGENT_RULE = "agent-decision"


def agent_decide(
    case: Case | None, command: AgentDecide, now: datetime, policy: Policy, codes: VoucherCodes
) -> list[EventData]:
    """The agent's ``DecisionMade`` (after a ``ChargeLinked`` when the charge's ledger moved);
    raise if the case is not waiting for a person or a remedy is refused."""
    if case is None:
        raise CaseNotAwaitingAgent("no such case")
    if case.status != "escalated":
        raise CaseNotAwaitingAgent(f"case {case.case_id} is {case.status}, not escalated")
    if bool(command.remedies) == (command.decline_reason is not None):
        raise InvalidAgentDecision("give remedies to resolve, or a reason to decline, not both")
    linked = refreshed(case, command.charge)
    if linked is not None:
        case = apply(case, linked)
    remedies = checked(case, command.remedies)
    mint = mint_for(case, codes)
    remedies = tuple(mint.reissue(r) if r.type == "voucher" else r for r in remedies)
    note = [Reason(code="agent_note", text=command.note)] if command.note else []
    if command.decline_reason is not None:
        reasons = (command.decline_reason, *note)
    else:
        reasons = tuple(note) or (Reason(code="agent_decision", text="Decided by a person after review."),)
    decision = decision_made(
        case,
        rule=AGENT_RULE,
        remedies=remedies,
        reasons=reasons,
        now=now,
        policy=policy,
        mint=mint,
        decided_by=f"agent:{command.agent_id}",
        outcome="declined" if command.decline_reason is not None else "resolved",
    )
    return [linked, decision] if linked is not None else [decision]
