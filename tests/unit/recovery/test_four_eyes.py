"""Approval limits and four eyes: an agent's decision over the limits, or on an urgent case,
is only proposed; a different supervisor approves it (on the ledger as it is then) or
rejects it; a supervisor decides alone."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from services.common.contract.events import DecisionMade, Reason, Remedy
from services.recovery.domain import AgentDecide, Case, decide
from services.recovery.domain.commands import ApproveDecision, FireTimer, RejectDecision
from services.recovery.domain.errors import DecisionPending, NoPendingDecision, RemedyRejected, SelfApproval
from services.recovery.domain.events import DecisionApproved, DecisionProposed, DecisionRejected

from .builders import CODES, POLICY, ROSTER, T0, charge, complaint, decision, file, limits, only, run

LIMIT = POLICY.approval_limits["USD"]


def refund(amount: Decimal | str, currency: str = "USD") -> Remedy:
    return Remedy(type="refund", charge_id="ch-1", amount=Decimal(amount), currency=currency)


def escalated(amount: str = "2000.00") -> Case:
    _, case = file(complaint("service_failure"), charge(amount))
    assert case.status == "escalated"
    return case


def proposed(case: Case, *remedies: Remedy, by: str = "ana") -> tuple[DecisionProposed, Case]:
    events, after = run(case, AgentDecide(agent_id=by, role="agent", remedies=remedies))
    return only(events, DecisionProposed), after


def test_an_agent_within_the_approval_limit_decides_alone() -> None:
    half = LIMIT / 2
    events, case = run(escalated(), AgentDecide(agent_id="ana", role="agent", remedies=(refund(half), refund(half))))
    assert decision(events).decided_by == "agent:ana"
    assert case.status == "decided"


def test_an_agent_over_the_approval_limit_only_proposes_and_nothing_is_granted() -> None:
    p, case = proposed(escalated(), refund(LIMIT), refund("0.01"))
    assert (p.proposed_by, p.needs_approval.code) == ("agent:ana", "over_approval_limit")
    assert case.status == "escalated"
    assert case.pending == p
    assert case.decisions == ()
    with pytest.raises(DecisionPending):  # one pending decision at a time, whoever decides
        run(case, AgentDecide(agent_id="sam", remedies=(refund("1.00"),)))


def test_a_supervisor_over_the_limit_decides_alone() -> None:
    events, _ = run(escalated(), AgentDecide(agent_id="sam", role="supervisor", remedies=(refund("1500.00"),)))
    assert decision(events).decided_by == "agent:sam"


def test_any_agent_decision_on_an_urgent_case_needs_approval() -> None:
    usual = Decimal(1)
    amount = limits("USD", "anomaly_auto_limit") + usual + Decimal("0.01")
    _, case = file(complaint("charge_disputed"), charge(amount, usual_customer_amount=usual))
    assert case.escalation is not None
    assert case.escalation.priority == "urgent"
    no = Reason(code="agent_declined", text="Not ours.")
    events, _ = run(case, AgentDecide(agent_id="ana", role="agent", decline_reason=no))
    assert only(events, DecisionProposed).needs_approval.code == "urgent_case"


def test_a_currency_without_an_approval_limit_needs_approval_for_any_money() -> None:
    policy = POLICY.model_copy(update={"approval_limits": {}})
    events, _ = run(escalated(), AgentDecide(agent_id="ana", role="agent", remedies=(refund("1.00"),)), T0, policy)
    assert only(events, DecisionProposed).needs_approval.code == "over_approval_limit"


def test_a_different_supervisor_approves_and_the_decision_is_the_proposers() -> None:
    _, case = proposed(escalated(), refund("1500.00"))
    events, after = run(case, ApproveDecision(supervisor_id="sam", charge=charge("2000.00")), T0 + timedelta(hours=1))
    approved = only(events, DecisionApproved)
    assert (approved.proposed_by, approved.approved_by) == ("agent:ana", "agent:sam")
    made = only(events, DecisionMade)
    assert made.decided_by == "agent:ana"
    assert [r.amount for r in made.remedies] == [Decimal("1500.00")]
    assert events.index(approved) < events.index(made)
    assert (after.status, after.pending) == ("decided", None)


def test_the_proposer_may_not_approve_their_own_decision() -> None:
    _, case = proposed(escalated(), refund("1500.00"))
    with pytest.raises(SelfApproval):
        decide(case, ApproveDecision(supervisor_id="ana"), T0, POLICY, ROSTER, CODES)


def test_an_approval_is_held_to_the_ledger_as_it_is_then() -> None:
    _, case = proposed(escalated(), refund("1500.00"))
    refunded = charge("2000.00", refunded_amount=Decimal("600.00"))
    with pytest.raises(RemedyRejected) as exc:
        decide(case, ApproveDecision(supervisor_id="sam", charge=refunded), T0, POLICY, ROSTER, CODES)
    assert exc.value.field == "remedies[0].amount"


def test_a_rejected_decision_leaves_the_case_waiting_for_another() -> None:
    _, case = proposed(escalated(), refund("1500.00"))
    events, after = run(case, RejectDecision(supervisor_id="sam", note="Too much."))
    rejected = only(events, DecisionRejected)
    assert (rejected.proposed_by, rejected.rejected_by, rejected.note) == ("agent:ana", "agent:sam", "Too much.")
    assert (after.status, after.pending) == ("escalated", None)
    with pytest.raises(NoPendingDecision):
        run(after, ApproveDecision(supervisor_id="sam"))
    events, _ = run(after, AgentDecide(agent_id="ana", role="agent", remedies=(refund("100.00"),)))
    assert decision(events).decided_by == "agent:ana"


def test_the_sla_keeps_running_while_a_decision_is_pending() -> None:
    _, case = proposed(escalated(), refund("1500.00"))
    breach = T0 + timedelta(hours=10)
    events, after = run(case, FireTimer(kind="sla_breach", due_at=breach, charge=charge("2000.00")), breach)
    # Breached and raised to urgent; the proposal still waits for its supervisor.
    assert [e.TYPE for e in events] == ["recovery.sla.breached.v1", "recovery.case.escalated.v1"]
    assert after.escalation is not None
    assert after.escalation.priority == "urgent"
    assert after.pending is not None
    events, _ = run(after, ApproveDecision(supervisor_id="sam", charge=charge("2000.00")), breach)
    assert only(events, DecisionMade).decided_by == "agent:ana"
