"""fallback (a person decides) and the guardrail (never an automatic no)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from services.common.contract.events import DecisionMade, PolicyRef
from services.recovery.domain import is_concession
from services.recovery.domain.guardrail import recent_concessions

from .builders import POLICY, T0, charge, complaint, customer, decision, escalation, file, history


@pytest.mark.parametrize("category", ["service_failure", "other"])
def test_escalates_a_service_failure_or_other_to_the_owner(category: str) -> None:
    events, case = file(complaint(category))
    raised = escalation(events)
    assert (raised.reason.code, raised.priority) == ("needs_person", "normal")
    assert raised.assignee == case.owner.id
    assert raised.due_by == case.sla_deadline == T0 + timedelta(hours=10)
    assert raised.complaint_id == "cmp-1"
    assert raised.customer == customer()
    assert raised.case_owner == case.owner
    assert case.status == "escalated"


@pytest.mark.parametrize(
    ("category", "fields"),
    [("delivery_failed", {}), ("charge_disputed", {}), ("defective_product", {}),
     ("damaged_item", {"claimed_amount": "10", "currency": "JPY"})],
)  # fmt: skip
def test_a_currency_without_limits_escalates(category: str, fields: dict[str, str]) -> None:
    the_complaint = complaint(category, remedy_preference="refund", **fields)
    raised = escalation(file(the_complaint, charge("500", "JPY"))[0])
    assert raised.reason.code == "currency_without_limits"


def test_a_charge_of_another_customer_escalates() -> None:
    raised = escalation(file(complaint(), charge(customer_id="someone-else"))[0])
    assert raised.reason.code == "charge_of_another_customer"


# ------------------------------------------------------------------ guardrail


def _days_ago(*days: float) -> tuple[datetime, ...]:
    return tuple(T0 - timedelta(days=d) for d in days)


def test_two_recent_concessions_do_not_hold_the_third_back() -> None:
    made = decision(file(complaint(), charge(), past=history(*_days_ago(1, 2)))[0])
    assert made.policy.rule == "failed-delivery"


def test_three_recent_concessions_send_the_next_to_a_person() -> None:
    raised = escalation(file(complaint(), charge(), past=history(*_days_ago(1, 2, 89)))[0])
    assert (raised.reason.code, raised.priority) == ("guardrail", "normal")
    assert "3 automatic concessions in the last 90 days" in raised.reason.text


def test_a_concession_exactly_ninety_days_ago_has_left_the_window() -> None:
    made = decision(file(complaint(), charge(), past=history(*_days_ago(1, 2, 90)))[0])
    assert made.policy.rule == "failed-delivery"


def test_concessions_after_now_are_not_counted() -> None:
    # A what-if replay may hand in the whole history, later concessions included.
    later = history(T0 + timedelta(days=1), T0 + timedelta(days=2), T0 + timedelta(days=3))
    assert recent_concessions(later, T0, POLICY) == 0


def test_the_guardrail_threshold_follows_the_policy() -> None:
    strict = POLICY.model_copy(update={"max_auto_concessions": 1})
    raised = escalation(file(complaint(), charge(), past=history(*_days_ago(5)), policy=strict)[0])
    assert raised.reason.code == "guardrail"


def test_the_guardrail_never_declines() -> None:
    events, _ = file(complaint(), charge(), past=history(*_days_ago(1, 2, 3, 4, 5)))
    assert not [e for e in events if isinstance(e, DecisionMade)]


def test_automatic_grants_are_concessions_but_cancellations_and_agents_are_not() -> None:
    made = decision(file(complaint(), charge())[0])
    assert is_concession(made)
    cancelled = decision(file(complaint("cancellation"), charge(kind="subscription"))[0])
    assert not is_concession(cancelled)
    by_agent = made.model_copy(update={"decided_by": "agent:a1", "policy": PolicyRef(id="d", version="1", rule="x")})
    assert not is_concession(by_agent)
