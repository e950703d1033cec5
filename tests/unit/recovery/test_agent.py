"""A person decides an escalated case; nobody else may, and only once."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from services.common.contract.events import Reason, Remedy
from services.recovery.domain import (
    AgentDecide,
    Case,
    CaseNotAwaitingAgent,
    InvalidAgentDecision,
    decide,
    pending_timers,
)

from .builders import CODES, POLICY, ROSTER, T0, charge, complaint, decision, file, run

REFUND = Remedy(type="refund", charge_id="ch-1", amount=Decimal("25.00"), currency="USD")
NO = Reason(code="duplicate_claim", text="This was refunded last week.")


def escalated() -> Case:
    _, case = file(complaint("service_failure"), charge("100.00"))
    return case


def test_an_agent_resolves_an_escalated_case() -> None:
    events, case = run(escalated(), AgentDecide(agent_id="ana", remedies=(REFUND,), note="Sorry."))
    made = decision(events)
    assert (made.outcome, made.decided_by) == ("resolved", "agent:ana")
    assert made.policy.rule == "agent-decision"
    assert made.remedies == [REFUND]
    assert made.reasons == [Reason(code="agent_note", text="Sorry.")]
    assert made.case_owner == case.owner
    assert case.status == "decided"
    assert pending_timers(case, POLICY) == []


def test_an_agent_may_decline_with_a_reason() -> None:
    made = decision(run(escalated(), AgentDecide(agent_id="ana", decline_reason=NO))[0])
    assert (made.outcome, made.remedies, made.reasons) == ("declined", [], [NO])


def test_an_agent_decision_after_the_deadline_is_outside_the_sla() -> None:
    late = T0 + timedelta(hours=10, seconds=1)
    made = decision(run(escalated(), AgentDecide(agent_id="ana", remedies=(REFUND,)), late)[0])
    assert made.within_sla is False


def test_an_agent_cannot_decide_a_case_decided_by_policy() -> None:
    _, case = file(complaint(), charge())
    with pytest.raises(CaseNotAwaitingAgent):
        run(case, AgentDecide(agent_id="ana", remedies=(REFUND,)))


def test_an_agent_cannot_decide_twice() -> None:
    _, case = run(escalated(), AgentDecide(agent_id="ana", remedies=(REFUND,)))
    with pytest.raises(CaseNotAwaitingAgent):
        run(case, AgentDecide(agent_id="bob", remedies=(REFUND,)))


def test_an_agent_cannot_decide_a_case_still_waiting_for_its_charge() -> None:
    _, case = file(complaint())
    with pytest.raises(CaseNotAwaitingAgent):
        run(case, AgentDecide(agent_id="ana", remedies=(REFUND,)))


def test_an_agent_cannot_decide_an_unknown_case() -> None:
    with pytest.raises(CaseNotAwaitingAgent):
        decide(None, AgentDecide(agent_id="ana", remedies=(REFUND,)), T0, POLICY, ROSTER, CODES)


@pytest.mark.parametrize("both", [True, False])
def test_an_agent_gives_remedies_or_a_reason_not_both_nor_neither(both: bool) -> None:
    command = AgentDecide(agent_id="ana", remedies=(REFUND,) if both else (), decline_reason=NO if both else None)
    with pytest.raises(InvalidAgentDecision):
        run(escalated(), command)


def test_an_agent_voucher_moves_the_voucher_sequence_on() -> None:
    voucher = Remedy(
        type="voucher", amount=Decimal("5.00"), currency="USD", voucher_code="AGENT-1",
        expires_at=T0 + timedelta(days=30),
    )  # fmt: skip
    _, case = run(escalated(), AgentDecide(agent_id="ana", remedies=(voucher,)))
    assert case.vouchers_issued == 1
