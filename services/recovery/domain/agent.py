"""A person's decision on an escalated case (through the ops interface).

It is an event like any other, ``decided_by: agent:<id>``; it closes the case, stops the
SLA clock, and carries the effort voucher when repeat contacts made one owed, whether the
person grants or declines. Only people decline; the machine never does.
"""

from __future__ import annotations

from datetime import datetime

from services.common.contract.events import EventData, Reason
from services.recovery.domain.case import Case
from services.recovery.domain.commands import AgentDecide
from services.recovery.domain.errors import CaseNotAwaitingAgent, InvalidAgentDecision
from services.recovery.domain.policy import Policy
from services.recovery.domain.settle import decision_made, mint_for

AGENT_RULE = "agent-decision"


def agent_decide(case: Case | None, command: AgentDecide, now: datetime, policy: Policy) -> list[EventData]:
    """The agent's ``DecisionMade``; raise if the case is not waiting for a person."""
    if case is None:
        raise CaseNotAwaitingAgent("no such case")
    if case.status != "escalated":
        raise CaseNotAwaitingAgent(f"case {case.case_id} is {case.status}, not escalated")
    if bool(command.remedies) == (command.decline_reason is not None):
        raise InvalidAgentDecision("give remedies to resolve, or a reason to decline, not both")
    note = [Reason(code="agent_note", text=command.note)] if command.note else []
    if command.decline_reason is not None:
        reasons = (command.decline_reason, *note)
    else:
        reasons = tuple(note) or (Reason(code="agent_decision", text="Decided by a person after review."),)
    decision = decision_made(
        case,
        rule=AGENT_RULE,
        remedies=command.remedies,
        reasons=reasons,
        now=now,
        policy=policy,
        mint=mint_for(case),
        decided_by=f"agent:{command.agent_id}",
        outcome="declined" if command.decline_reason is not None else "resolved",
    )
    return [decision]
