"""The breach fallback's events in full: what is granted (every field of the remedy), the
reasons written out, and who a refused or reopened case goes to, so that a change to any of
them fails here."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from services.common.contract.events import CaseEscalated, DecisionMade, Reason, Remedy, SlaBreached
from services.recovery.domain import Case

from .builders import POLICY, charge, complaint, file, only
from .test_sla import DEADLINE, escalated_case, fire

APOLOGY = Reason(code="sla_breached", text="We are sorry we took longer than we promised; we grant what you asked for.")
OVERDUE = Reason(code="sla_breached", text="The decision is overdue; a supervisor takes the case now.")


def breach(case: Case) -> DecisionMade:
    events, _ = fire(case, "sla_breach", DEADLINE)
    assert [type(e) for e in events] == [SlaBreached, DecisionMade]
    return only(events, DecisionMade)


def referred(case: Case, deadline: object = DEADLINE) -> CaseEscalated:
    events, _ = fire(case, "sla_breach", deadline)  # type: ignore[arg-type]
    return only(events, CaseEscalated)


def test_a_claimed_refund_is_granted_whole_with_the_apology() -> None:
    made = breach(escalated_case(complaint("service_failure", claimed_amount="20.00", currency="USD"), charge("80.00")))
    assert list(made.remedies) == [
        Remedy(type="refund", charge_id="ch-1", amount=Decimal("20.00"), currency="USD",
               settlement=POLICY.refund_settlement),
    ]  # fmt: skip
    assert list(made.reasons) == [APOLOGY]


def test_a_cancellation_is_confirmed_on_its_charge() -> None:
    _, case = file(complaint("cancellation", charge_id="ch-7"))
    assert case.status == "awaiting_charge"
    made = breach(case.model_copy(update={"status": "escalated"}))
    assert list(made.remedies) == [Remedy(type="cancellation", charge_id="ch-7")]


def test_a_preferred_repair_names_its_charge() -> None:
    claim = complaint("other", claimed_amount="12.00", currency="EUR", remedy_preference="repair", charge_id="ch-3")
    assert list(breach(escalated_case(claim)).remedies) == [Remedy(type="repair", charge_id="ch-3")]


def test_a_preferred_credit_is_a_voucher_of_the_value_on_the_claim_s_charge() -> None:
    claim = complaint("other", claimed_amount="12.00", currency="EUR", remedy_preference="credit", charge_id="ch-3")
    (granted,) = breach(escalated_case(claim)).remedies
    assert (granted.type, granted.charge_id, granted.amount, granted.currency) == (
        "voucher",
        "ch-3",
        Decimal("12.00"),
        "EUR",
    )
    assert granted.expires_at is not None
    assert granted.expires_at - DEADLINE >= timedelta(days=POLICY.voucher_valid_days)


def test_a_claim_of_another_customer_s_charge_without_an_amount_goes_to_a_supervisor() -> None:
    case = escalated_case(complaint("service_failure"), charge("8.00", customer_id="someone-else"))
    assert referred(case).reason == OVERDUE


def test_an_amount_without_its_currency_is_valued_at_the_charge() -> None:
    _, case = file(complaint("service_failure"), charge("8.00"))
    made = breach(case)
    assert [(r.type, r.amount, r.currency) for r in made.remedies] == [("refund", Decimal("8.00"), "USD")]


def test_a_supervisor_takes_an_overdue_case_the_fallback_cannot_grant() -> None:
    raised = referred(escalated_case())
    assert (raised.priority, raised.reason) == ("urgent", OVERDUE)


def test_a_reopened_case_goes_to_a_supervisor_even_with_a_claim_under_the_limit() -> None:
    _, case = file(complaint("other", claimed_amount="5.00", currency="USD"), charge("50.00"))
    assert case.decisions == ()
    assert case.status == "escalated"
    decided = case.model_copy(update={"decisions": (breach(case),)})
    raised = referred(decided.model_copy(update={"status": "escalated"}))
    assert raised.reason == OVERDUE
