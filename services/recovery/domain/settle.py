"""From a verdict to events: the guardrail, the repeat-contact rule, and the event shapes.

``settle`` decides an open case now, in the policy's order (docs/policy.md): the category's rule (held to
what remains on the charge, see ``ledger.py``), then the guardrail (which can only turn an
automatic concession into a referral), then
repeat-contact (a referral as ``high`` and an effort voucher owed to the case's decision,
whoever makes it). Every decision and escalation the domain emits is built here, so they
all carry the same fields the same way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from services.common.contract.events import (
    CalendarRef,
    CaseEscalated,
    DecisionMade,
    EventData,
    Priority,
    Reason,
    Remedy,
)
from services.recovery.domain import build
from services.recovery.domain.calendar import CalendarError, add_business_hours
from services.recovery.domain.case import Case, apply
from services.recovery.domain.events import EffortVoucherOwed
from services.recovery.domain.facts import ChargeFacts, CustomerHistory
from services.recovery.domain.guardrail import guardrail_holds, recent_concessions
from services.recovery.domain.ledger import bound, refreshed
from services.recovery.domain.policy import Policy
from services.recovery.domain.remedies import VoucherCodes, VoucherMint, money_text, voucher_expiry
from services.recovery.domain.roster import Roster, supervisor_for
from services.recovery.domain.rules import rule_for
from services.recovery.domain.verdict import Grant, Refer, Situation, Verdict, refer


def mint_for(case: Case, codes: VoucherCodes) -> VoucherMint:
    """The voucher mint for the case's next decision."""
    return VoucherMint(case_id=case.case_id, next_sequence=case.vouchers_issued, codes=codes)


def decision_made(
    case: Case,
    *,
    rule: str,
    remedies: tuple[Remedy, ...],
    reasons: tuple[Reason, ...],
    now: datetime,
    policy: Policy,
    mint: VoucherMint,
    decided_by: str = "policy",
    outcome: Literal["resolved", "declined"] = "resolved",
    within_sla: bool | None = None,
) -> DecisionMade:
    """The case's decision, with the effort voucher added when one is owed."""
    owed = case.effort_voucher_owed
    if owed is not None and not case.effort_voucher_granted:
        expires = voucher_expiry(now, policy.voucher_valid_days)
        remedies = (*remedies, mint.issue(owed.amount, owed.currency, expires))
        reasons = (
            *reasons,
            build.reason(
                code="effort_voucher",
                text=(
                    f"A voucher of {money_text(owed.amount, owed.currency)} for the trouble "
                    f"of contacting us {case.contacts} times."
                ),
            ),
        )
    return build.decision(
        case_id=case.case_id,
        complaint_id=case.latest_complaint.complaint_id,
        customer=case.customer,
        outcome=outcome,
        remedies=list(remedies),
        reasons=list(reasons),
        policy=policy.ref(rule),
        decided_by=decided_by,
        case_owner=case.owner,
        decided_at=now,
        sla_deadline=case.sla_deadline,
        within_sla=now <= case.sla_deadline if within_sla is None else within_sla,
    )


def escalated(
    case: Case, referral: Refer, roster: Roster, policy: Policy, due_by: datetime | None = None
) -> CaseEscalated:
    """The escalation: to the owner, or to a supervisor of the customer's language if urgent.

    ``due_by`` is the customer's promise (the case's deadline unless a reopening gives a fresh
    one). The person's deadline is counted from the same filing in business hours of the
    assignee's team calendar, with the calendar's id and version, when the team has one.
    """
    customer = case.customer
    urgent = referral.priority == "urgent"
    assignee = supervisor_for(roster, customer.locale).id if urgent else case.owner.id
    start = case.filed_at if due_by is None else case.latest_complaint.filed_at
    person = person_deadline(roster, assignee, referral.priority, start, policy)
    return build.case_escalated(
        case_id=case.case_id,
        reason=referral.reason,
        priority=referral.priority,
        assignee=assignee,
        due_by=due_by or case.sla_deadline,
        complaint_id=case.latest_complaint.complaint_id,
        customer=customer,
        case_owner=case.owner,
        **person,
    )


def person_deadline(
    roster: Roster, assignee: str, priority: Priority, start: datetime, policy: Policy
) -> dict[str, object]:
    """The person's deadline and warning from ``start`` on the assignee's team calendar, and
    the calendar (as ``CaseEscalated`` fields); none without a calendar, or where it has no
    working time to count (then the wall clock applies)."""
    cal = roster.calendar_of(assignee)
    if cal is None:
        return {}
    hours = policy.business_hours(priority)
    try:
        due = add_business_hours(cal, start, hours)
        warning = add_business_hours(cal, start, hours * policy.sla_warning_ratio)
    except CalendarError:
        return {}
    ref = CalendarRef.model_construct(id=cal.id, version=cal.version, zone=cal.zone)
    return {"person_due_by": due, "person_warning_at": warning, "calendar": ref}


def is_repeat(case: Case, policy: Policy) -> bool:
    """True when the customer has come back about this charge or order too often."""
    return case.contacts >= policy.repeat_contact_threshold


def effort_voucher_owed(case: Case, policy: Policy) -> EffortVoucherOwed | None:
    """The effort voucher, in the case's currency (or the fallback), unless already owed."""
    if case.effort_voucher_owed is not None:
        return None
    currency = case.charge.currency if case.charge else case.first_complaint.currency
    limits = policy.limits_for(currency)
    if currency is None or limits is None:
        currency, limits = policy.fallback_currency, policy.limits[policy.fallback_currency]
    return build.effort_voucher_owed(case_id=case.case_id, amount=limits.effort_voucher, currency=currency)


def repeat_referral(case: Case) -> Refer:
    """The repeat-contact referral (``high``)."""
    return refer(
        "repeat_contact",
        f"The customer has contacted us {case.contacts} times about this; a person decides.",
        "high",
    )


def settle(
    case: Case,
    charge: ChargeFacts | None,
    now: datetime,
    policy: Policy,
    roster: Roster,
    history: CustomerHistory,
    codes: VoucherCodes,
) -> list[EventData]:
    """Decide an open (or waiting) case now with what is known (``charge``: as read now)."""
    events: list[EventData] = []

    def record(event: EventData) -> None:
        nonlocal case
        events.append(event)
        case = apply(case, event)

    linked = refreshed(case, charge)
    if linked is not None:
        record(linked)
    mint = mint_for(case, codes)
    situation = Situation(case, case.first_complaint, case.charge, now, policy, mint)
    verdict: Verdict = rule_for(situation)
    if isinstance(verdict, Grant):
        verdict = bound(case, verdict)
    if isinstance(verdict, Grant) and verdict.concession and guardrail_holds(history, now, policy):
        verdict = refer(
            "guardrail",
            f"{recent_concessions(history, now, policy)} automatic concessions in the last "
            f"{policy.guardrail_window_days} days; a person decides this one.",
        )
    if is_repeat(case, policy):
        owed = effort_voucher_owed(case, policy)
        if owed is not None:
            record(owed)
        if not (isinstance(verdict, Refer) and verdict.priority == "urgent"):
            verdict = repeat_referral(case)
    if isinstance(verdict, Grant):
        record(
            decision_made(
                case,
                rule=verdict.rule,
                remedies=verdict.remedies,
                reasons=verdict.reasons,
                now=now,
                policy=policy,
                mint=mint,
            )
        )
    else:
        record(escalated(case, verdict, roster, policy))
    return events
