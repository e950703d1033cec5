"""The remedy ledger of a charge: how much may still go back to the customer on it.

::

    remaining = charged - refunded by billing - refunded or waived by the case's decisions

Refunds and waivers count (money back, or money never collected); vouchers, repairs,
replacements and cancellations do not. All of it is in the charge's currency, for the
charge's customer.

Billing's confirmed refunds (``ChargeFacts.refunded_amount``, read for each decision, with
refunds that came before their charge) and the service's own refunds are both counted,
although billing may be confirming a refund the service decided: a confirmation names no
decision, so pairing them would be a guess, and a wrong pairing pays twice. Counting both
never pays more than was charged; what it costs is that a refund billing has confirmed
counts twice, so a later claim on that charge is capped lower or goes to a person sooner.

Only one case can put money on a charge. A case belongs to one customer and one charge
(``case_id_for``); the rules refer the charge of another customer; and these checks refuse
money on a charge that is not the case's, not the customer's or not posted yet. So the
case's own decisions are all the decisions on its charge, and a what-if that re-decides a
case counts its own simulated decisions.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from services.common.contract.events import Remedy
from services.recovery.domain import build
from services.recovery.domain.case import Case
from services.recovery.domain.errors import CaseMismatch, RemedyRejected
from services.recovery.domain.events import ChargeLinked
from services.recovery.domain.facts import ChargeFacts
from services.recovery.domain.remedies import money_text
from services.recovery.domain.verdict import Grant, Refer, Verdict, refer

MONEY_BACK = frozenset({"refund", "charge_waiver"})
# Remedies that do something besides money: a grant keeps them when nothing is left to pay.
_SERVICES = frozenset({"replacement", "repair", "cancellation"})
_ZERO = Decimal(0)


def granted(case: Case) -> Decimal:
    """Refunds and waivers of the case's decisions on its charge (or naming none, as a
    person's could), in the charge's currency."""
    charge = case.charge
    if charge is None:
        return _ZERO
    return sum(
        (
            r.amount
            for d in case.decisions
            for r in d.remedies
            if r.type in MONEY_BACK
            and r.amount is not None
            and r.currency == charge.currency
            and r.charge_id in (None, charge.charge_id)
        ),
        _ZERO,
    )


def remaining(case: Case) -> Decimal | None:
    """What may still be refunded or waived on the case's charge (None: no charge known)."""
    charge = case.charge
    if charge is None:
        return None
    return max(charge.amount - charge.refunded_amount - granted(case), _ZERO)


def refreshed(case: Case, charge: ChargeFacts | None) -> ChargeLinked | None:
    """The ``ChargeLinked`` that brings the case's charge up to date before a decision: the
    charge itself if the case has not linked it, else the facts it linked (fixed at the
    charge's arrival) with the ledger read now; None when nothing changed."""
    if charge is None:
        return None
    if charge.charge_id != case.charge_id:
        raise CaseMismatch(f"charge {charge.charge_id} is not the charge of case {case.case_id}")
    if case.charge is None:
        return build.charge_linked(case_id=case.case_id, charge=charge)
    if case.charge.refunded_amount == charge.refunded_amount:
        return None
    return build.charge_linked(case_id=case.case_id, charge=case.charge.with_ledger(charge))


def bound(case: Case, grant: Grant) -> Verdict:
    """``grant`` held to what remains on the case's charge.

    As it is when it fits; paying what remains, in the grant's order, with a
    ``capped_at_remaining`` reason, when it does not; when nothing remains, a referral
    (``nothing_left_to_refund``), unless the grant also does something besides money (a
    cancellation is still confirmed, without its refund, and says why). Money on a charge
    that is not the customer's, not in its currency or not posted yet is referred. Money
    that names no charge (a claim about no charge) is bounded by its rule's limit alone.
    """
    owed = [i for i, r in enumerate(grant.remedies) if r.type in MONEY_BACK and r.charge_id is not None]
    if not owed:
        return grant
    for i in owed:
        problem = _problem(case, i, grant.remedies[i])
        if problem is not None:
            return refer(problem[1], problem[2])
    charge = case.charge
    left = remaining(case)
    assert charge is not None
    assert left is not None
    asked = sum((_amount(grant.remedies[i]) for i in owed), _ZERO)
    if asked <= left:
        return grant
    if left == 0:
        reason = build.reason(
            code="nothing_left_to_refund",
            text=f"Nothing is left to refund on this charge: {_ledger_text(case)}.",
        )
        kept = tuple(r for i, r in enumerate(grant.remedies) if i not in owed)
        if any(r.type in _SERVICES for r in kept):
            return Grant(grant.rule, kept, (*grant.reasons, reason), grant.concession)
        return Refer(reason)
    budget = left
    capped: list[Remedy] = []
    for i, r in enumerate(grant.remedies):
        if i in owed:
            pay = min(_amount(r), budget)
            budget -= pay
            if pay > 0:
                capped.append(r.model_copy(update={"amount": pay}))
        else:
            capped.append(r)
    reason = build.reason(
        code="capped_at_remaining",
        text=(
            f"{money_text(left, charge.currency)} is what remains on this charge "
            f"({_ledger_text(case)}), so that is paid instead of {money_text(asked, charge.currency)}."
        ),
    )
    return Grant(grant.rule, tuple(capped), (*grant.reasons, reason), grant.concession)


def checked(case: Case, remedies: Sequence[Remedy]) -> tuple[Remedy, ...]:
    """A person's remedies as they will be recorded, checked against the case's charge.

    A refund or waiver that names no charge is on the case's charge, if it has one. Raise
    :class:`RemedyRejected`, naming the field, for a remedy on another charge; money back
    on a charge not posted yet, of another customer or in another currency; and refunds and
    waivers that together pass what remains.
    """
    out: list[Remedy] = []
    for i, r in enumerate(remedies):
        if r.type in MONEY_BACK and r.charge_id is None and case.charge_id is not None:
            r = r.model_copy(update={"charge_id": case.charge_id})
        problem = _problem(case, i, r)
        if problem is not None:
            raise RemedyRejected(problem[0], problem[2])
        out.append(r)
    left = remaining(case)
    if left is not None and case.charge is not None:
        total = _ZERO
        for i, r in enumerate(out):
            if r.type in MONEY_BACK and r.charge_id is not None:
                total += _amount(r)
                if total > left:
                    currency = case.charge.currency
                    raise RemedyRejected(
                        f"remedies[{i}].amount",
                        f"refunds and waivers of {money_text(total, currency)} pass the "
                        f"{money_text(left, currency)} that remains on charge {case.charge.charge_id} "
                        f"({_ledger_text(case)}).",
                    )
    return tuple(out)


def _problem(case: Case, i: int, r: Remedy) -> tuple[str, str, str] | None:
    """What keeps remedy ``i`` off the case's charge: (field, reason code, text), or None."""
    if r.charge_id is not None and r.charge_id != case.charge_id:
        whose = f"its charge is {case.charge_id}" if case.charge_id else "it is about no charge"
        return f"remedies[{i}].charge_id", "not_the_case_charge", f"charge {r.charge_id} is not this case's ({whose})."
    if r.type not in MONEY_BACK or r.charge_id is None:
        return None
    charge = case.charge
    if charge is None:
        return (
            f"remedies[{i}].charge_id",
            "charge_not_found",
            f"charge {r.charge_id} has not been posted yet; money goes back on it once it has.",
        )
    if charge.customer_id != case.customer_id:
        return (
            f"remedies[{i}].charge_id",
            "charge_of_another_customer",
            f"charge {r.charge_id} is not on this customer's account.",
        )
    if r.currency != charge.currency:
        return (
            f"remedies[{i}].currency",
            "not_the_charge_currency",
            f"{r.currency} is not the currency of charge {charge.charge_id} ({charge.currency}).",
        )
    return None


def _amount(remedy: Remedy) -> Decimal:
    return remedy.amount if remedy.amount is not None else _ZERO


def _ledger_text(case: Case) -> str:
    charge = case.charge
    assert charge is not None
    parts = [f"{money_text(charge.amount, charge.currency)} charged"]
    if charge.refunded_amount:
        parts.append(f"{money_text(charge.refunded_amount, charge.currency)} refunded by billing")
    before = granted(case)
    if before:
        parts.append(f"{money_text(before, charge.currency)} refunded or waived by earlier decisions")
    return ", ".join(parts)
