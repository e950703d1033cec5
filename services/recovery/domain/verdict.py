"""What a rule concludes, before it becomes events: grant something, or refer to a person.

A rule never declines: when its limit is exceeded or it cannot tell, it refers the case
(``Refer``) and a person decides with the SLA running.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.common.contract.events import ComplaintFiled, Priority, Reason, Remedy
from services.recovery.domain import build
from services.recovery.domain.case import Case
from services.recovery.domain.facts import ChargeFacts
from services.recovery.domain.policy import CurrencyLimits, Policy
from services.recovery.domain.remedies import VoucherMint

PRIORITY_RANK: dict[Priority, int] = {"normal": 0, "high": 1, "urgent": 2}


@dataclass(frozen=True)
class Grant:
    """Decide now, by policy: ``remedies`` under ``rule``, explained by ``reasons``.

    ``concession`` is False for grants that are the customer's right rather than goodwill
    (a cancellation): the guardrail neither holds nor counts those.
    """

    rule: str
    remedies: tuple[Remedy, ...]
    reasons: tuple[Reason, ...]
    concession: bool = True


@dataclass(frozen=True)
class Refer:
    """Escalate to a person; ``urgent`` goes to a supervisor."""

    reason: Reason
    priority: Priority = "normal"


Verdict = Grant | Refer


def refer(code: str, text: str, priority: Priority = "normal") -> Refer:
    """Shorthand for a referral with a reason."""
    return Refer(build.reason(code=code, text=text), priority)


@dataclass(frozen=True)
class Situation:
    """Everything a rule reads: the case, the complaint it is about, the charge (if seen)."""

    case: Case
    complaint: ComplaintFiled
    charge: ChargeFacts | None
    now: datetime
    policy: Policy
    mint: VoucherMint


def limits_or_refer(situation: Situation, currency: str) -> CurrencyLimits | Refer:
    """The currency's limits, or the referral for a currency the policy sets none for."""
    limits = situation.policy.limits_for(currency)
    if limits is None:
        return refer("currency_without_limits", f"The policy sets no limits for {currency}.")
    return limits
