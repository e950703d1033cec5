"""The guardrail: a customer with many recent automatic concessions goes to a person.

The telco story (docs/policy.md): a few customers seek permanent discounts, and recording every decision is what
lets us see them. The guardrail never says no; it only takes the decision away from the
machine. It counts *automatic concessions*: decisions by policy that granted something by
one of the rules below. Confirming a cancellation is the customer's right, not a
concession, and is neither counted nor held back.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from services.common.contract.events import DecisionMade
from services.recovery.domain.facts import CustomerHistory
from services.recovery.domain.policy import Policy

CONCESSION_RULES = frozenset(
    {
        "failed-delivery",
        "micro-claim",
        "charge-anomaly",
        "damaged-item",
        "defective-product",
        "sla-breach-fallback",
    }
)


def is_concession(decision: DecisionMade) -> bool:
    """Whether ``decision`` counts in a customer's ``concession_times`` (the app's query)."""
    return (
        decision.decided_by == "policy"
        and decision.outcome == "resolved"
        and bool(decision.remedies)
        and decision.policy.rule in CONCESSION_RULES
    )


def recent_concessions(history: CustomerHistory, now: datetime, policy: Policy) -> int:
    """Automatic concessions in the window: after ``now - window`` and not after ``now``.

    One exactly ``guardrail_window_days`` old has left the window.
    """
    start = now - timedelta(days=policy.guardrail_window_days)
    return sum(1 for t in history.concession_times if start < t <= now)


def guardrail_holds(history: CustomerHistory, now: datetime, policy: Policy) -> bool:
    """True when the next automatic concession must go to a person instead."""
    return recent_concessions(history, now, policy) >= policy.max_auto_concessions
