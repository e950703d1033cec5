"""The SLA clock: which timers a case needs, and what happens when one fires.

Every complaint gets its decision within ``sla_hours`` of filing. The application keeps
the timers :func:`pending_timers` lists scheduled (replacing the case's set after every
append) and fires each as a ``FireTimer`` command when due. A fired timer changes the case
so that it is no longer pending, which makes firing twice harmless; a timer for a closed
case, an outdated one (its ``due_at`` no longer matches) or one fired early does nothing.

At the breach, the customer-favourable fallback (docs/policy.md): grant the claimed remedy when
it is worth at most ``breach_fallback_limit``, with an apology for the delay, held to what
remains on the charge (``ledger.py``); otherwise an urgent escalation to a supervisor. The
guardrail does not hold this back: the delay is ours.

Two clocks: the customer's promise (``sla_deadline``, the wall clock) and, on an escalation
whose assignee's team has a calendar, the person's deadline in business hours (recorded on
the escalation with its warning, so a replay finds the same instants whatever the calendar
file says now). The policy's ``clocks`` for the escalation's priority say which one the
warning, the breach and the fallback each follow; a fallback on a different instant from the
breach has its own timer (``sla_fallback``).
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from pydantic import AwareDatetime, BaseModel, ConfigDict

from services.common.contract.events import EventData, Remedy
from services.recovery.domain import build
from services.recovery.domain.case import Case, apply
from services.recovery.domain.commands import FireTimer, TimerKind
from services.recovery.domain.ledger import bound, refreshed
from services.recovery.domain.policy import Policy
from services.recovery.domain.remedies import VoucherCodes, VoucherMint, refund, service, voucher_expiry
from services.recovery.domain.roster import Roster
from services.recovery.domain.settle import decision_made, escalated, mint_for, settle
from services.recovery.domain.verdict import Grant, refer


class Timer(BaseModel):
    """A timer the application must keep scheduled for a case."""

    model_config = ConfigDict(frozen=True)

    kind: TimerKind
    due_at: AwareDatetime


class Instants(NamedTuple):
    """When the case's warning, breach and breach fallback are due, each on its clock."""

    warning: datetime
    breach: datetime
    fallback: datetime


def clock_instants(case: Case, policy: Policy) -> Instants:
    """The warning, breach and fallback instants of an undecided case.

    On the wall clock: warning at ``deadline - (1 - sla_warning_ratio) x sla`` (that is,
    ``filed_at + ratio x sla`` for a case that was not reopened), breach and fallback at the
    deadline. On the business clock: the person's warning and deadline recorded on the
    escalation (the wall clock's where none was recorded).
    """
    deadline = case.sla_deadline
    wall_warning = deadline - policy.warning_lead
    escalation = case.escalation
    if escalation is None or escalation.person_due_by is None or escalation.person_warning_at is None:
        return Instants(wall_warning, deadline, deadline)
    clocks = policy.clocks_for(escalation.priority)
    person = escalation.person_due_by
    return Instants(
        escalation.person_warning_at if clocks.warning == "business" else wall_warning,
        person if clocks.breach == "business" else deadline,
        person if clocks.fallback == "business" else deadline,
    )


def pending_timers(case: Case, policy: Policy) -> list[Timer]:
    """The case's timers, soonest first; none once the case is decided.

    The warning, the breach and (when on its own instant) the fallback at
    :func:`clock_instants`, and the charge wait while the case awaits a charge.
    """
    if case.is_decided:
        return []
    timers: list[Timer] = []
    if case.status == "awaiting_charge" and case.awaiting_charge_until is not None:
        timers.append(Timer(kind="charge_wait", due_at=case.awaiting_charge_until))
    at = clock_instants(case, policy)
    if not case.warning_sent and not case.breached:
        timers.append(Timer(kind="sla_warning", due_at=at.warning))
    if not case.breached:
        timers.append(Timer(kind="sla_breach", due_at=at.breach))
    if at.fallback != at.breach and not case.fallen_back:
        timers.append(Timer(kind="sla_fallback", due_at=at.fallback))
    return sorted(timers, key=lambda t: (t.due_at, t.kind))


def fire_timer(
    case: Case | None, command: FireTimer, now: datetime, policy: Policy, roster: Roster, codes: VoucherCodes
) -> list[EventData]:
    """The events of a due timer (none for a stale, early or repeated one)."""
    if case is None:
        return []
    due = {t.kind: t.due_at for t in pending_timers(case, policy)}
    if due.get(command.kind) != command.due_at or now < command.due_at:
        return []
    match command.kind:
        case "sla_warning":
            return [build.sla_warning(case_id=case.case_id, sla_deadline=case.sla_deadline, at=now)]
        case "charge_wait":
            # Decide with what is known: rules that need the charge refer the case.
            return settle(case, None, now, policy, roster, command.history, codes)
        case "sla_breach" | "sla_fallback":
            at = clock_instants(case, policy)
            events: list[EventData] = []
            if command.kind == "sla_breach":
                events.append(build.sla_breached(case_id=case.case_id, sla_deadline=case.sla_deadline, at=now))
            linked = refreshed(case, command.charge)
            if linked is not None:
                events.append(linked)
            for event in events:
                case = apply(case, event)
            if command.kind == "sla_breach" and (at.fallback != at.breach or case.fallen_back):
                return events  # the fallback has its own timer, or has run
            return [*events, *breach_fallback(case, now, policy, roster, codes)]


def breach_fallback(case: Case, now: datetime, policy: Policy, roster: Roster, codes: VoucherCodes) -> list[EventData]:
    """Grant the claimed remedy up to ``breach_fallback_limit``, else urgent to a supervisor.

    A case reopened by repeat contacts already had a decision: it is never granted twice by
    machine, it goes to a supervisor. So does one whose claimed refund the charge's ledger
    refuses (nothing left, the charge not posted or not the customer's).
    """
    mint = mint_for(case, codes)
    remedy = None if case.decisions else claimed_remedy(case, now, policy, mint)
    apology = build.reason(
        code="sla_breached",
        text="We are sorry we took longer than we promised; we grant what you asked for.",
    )
    grant = None if remedy is None else bound(case, Grant("sla-breach-fallback", (remedy,), (apology,)))
    if not isinstance(grant, Grant):
        text = "The decision is overdue; a supervisor takes the case now."
        return [escalated(case, refer("sla_breached", text, "urgent"), roster, policy)]
    decision = decision_made(
        case,
        rule=grant.rule,
        remedies=grant.remedies,
        reasons=grant.reasons,
        now=now,
        policy=policy,
        mint=mint,
        within_sla=False,
    )
    return [decision]


def claimed_remedy(case: Case, now: datetime, policy: Policy, mint: VoucherMint) -> Remedy | None:
    """What the customer asked for, if it is worth at most ``breach_fallback_limit``.

    The value is the claimed amount, else the charge's amount (the charge of another
    customer does not count). A cancellation is confirmed whatever its value. Preference
    ``repair`` or ``replacement``: that; ``credit``: a voucher of the value; ``refund`` or
    none: a refund of the value. No value, no limits for its currency, or over the limit:
    None (a supervisor decides).
    """
    complaint = case.first_complaint
    if complaint.category == "cancellation":
        return service("cancellation", complaint.charge_id)
    charge = case.charge if case.charge and case.charge.customer_id == case.customer_id else None
    if complaint.claimed_amount is not None and complaint.currency is not None:
        value, currency = complaint.claimed_amount, complaint.currency
    elif charge is not None:
        value, currency = charge.amount, charge.currency
    else:
        return None
    limits = policy.limits_for(currency)
    if limits is None or value > limits.breach_fallback_limit:
        return None
    match complaint.remedy_preference:
        case "repair" | "replacement" as kind:
            return service(kind, complaint.charge_id)
        case "credit":
            expires = voucher_expiry(now, policy.voucher_valid_days)
            return mint.issue(value, currency, expires, complaint.charge_id)
    return refund(complaint.charge_id, value, currency, policy.refund_settlement)
