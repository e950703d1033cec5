"""A complaint naming a charge not seen yet waits for it, up to charge_wait_minutes."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from services.common.contract.events import CaseOpened
from services.recovery.domain import (
    CaseMismatch,
    ChargeArrived,
    ChargeAwaited,
    ChargeLinked,
    ContactAdded,
    FireTimer,
    Timer,
    decide,
    pending_timers,
)

from .builders import CODES, POLICY, ROSTER, T0, charge, complaint, decision, escalation, file, only, run

UNTIL = T0 + timedelta(minutes=15)


def test_a_complaint_about_an_unseen_charge_waits_for_it() -> None:
    events, case = file(complaint())
    assert [type(e) for e in events] == [CaseOpened, ContactAdded, ChargeAwaited]
    assert only(events, ChargeAwaited).until == UNTIL
    assert case.status == "awaiting_charge"
    assert pending_timers(case, POLICY)[0] == Timer(kind="charge_wait", due_at=UNTIL)


def test_the_charge_arriving_decides_the_waiting_case() -> None:
    _, case = file(complaint())
    now = T0 + timedelta(minutes=3)
    events, case = run(case, ChargeArrived(charge=charge("4.99")), now)
    assert isinstance(events[0], ChargeLinked)
    made = decision(events)
    assert (made.decided_at, made.remedies[0].amount) == (now, Decimal("4.99"))
    assert case.charge == charge("4.99")
    assert pending_timers(case, POLICY) == []


def test_the_wait_expiring_escalates_a_charge_never_seen() -> None:
    _, case = file(complaint())
    events, case = run(case, FireTimer(kind="charge_wait", due_at=UNTIL), UNTIL)
    raised = escalation(events)
    assert raised.reason.code == "charge_not_found"
    assert raised.due_by == T0 + timedelta(hours=10)
    assert [t.kind for t in pending_timers(case, POLICY)] == ["sla_warning", "sla_breach"]


def test_the_wait_expiring_decides_with_what_is_known() -> None:
    # A cancellation needs no charge to be confirmed; only the refund of the rest needs it.
    _, case = file(complaint("cancellation"))
    events, _ = run(case, FireTimer(kind="charge_wait", due_at=UNTIL), UNTIL)
    assert [r.type for r in decision(events).remedies] == ["cancellation"]


def test_a_complaint_filed_more_than_fifteen_minutes_ago_does_not_wait() -> None:
    events, _ = file(complaint(), now=UNTIL)
    assert escalation(events).reason.code == "charge_not_found"


def test_a_complaint_whose_rule_does_not_read_the_charge_does_not_wait() -> None:
    events, _ = file(complaint("service_failure"))
    assert escalation(events).reason.code == "needs_person"


def test_a_damage_claim_about_a_charge_waits_for_the_charge_it_is_refunded_on() -> None:
    _, case = file(complaint("damaged_item", claimed_amount="10.00", currency="USD"))
    assert case.status == "awaiting_charge"


def test_a_repeat_contact_while_waiting_keeps_waiting() -> None:
    _, case = file(complaint())
    again = complaint(complaint_id="c2", filed_at=T0 + timedelta(minutes=5))
    events, case = file(again, case=case)
    assert [type(e) for e in events] == [ContactAdded]
    assert case.status == "awaiting_charge"


def test_a_repeat_contact_bringing_the_charge_decides() -> None:
    _, case = file(complaint())
    again = complaint(complaint_id="c2", filed_at=T0 + timedelta(minutes=5))
    events, _ = file(again, charge(), case=case)
    assert decision(events).policy.rule == "failed-delivery"


def test_a_charge_arriving_for_a_decided_case_changes_nothing() -> None:
    _, case = file(complaint(), charge())
    assert run(case, ChargeArrived(charge=charge()), T0)[0] == []


def test_a_charge_arriving_late_is_linked_to_the_escalated_case() -> None:
    _, case = file(complaint())
    _, case = run(case, FireTimer(kind="charge_wait", due_at=UNTIL), UNTIL)
    events, case = run(case, ChargeArrived(charge=charge()), UNTIL + timedelta(minutes=1))
    assert [type(e) for e in events] == [ChargeLinked]
    assert case.status == "escalated"


def test_a_charge_for_no_case_changes_nothing() -> None:
    assert decide(None, ChargeArrived(charge=charge()), T0, POLICY, ROSTER, CODES) == []


def test_another_charge_for_a_waiting_case_is_refused() -> None:
    _, case = file(complaint())
    with pytest.raises(CaseMismatch):
        run(case, ChargeArrived(charge=charge(charge_id="ch-2")), T0)
