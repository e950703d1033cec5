"""The case: one per charge or order, opened with an owner and a deadline, folded from events."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.common.contract.events import CaseOpened, SlaWarning
from services.recovery.domain import (
    CASE_EVENT_TYPES,
    CaseMismatch,
    ContactAdded,
    InvalidStream,
    apply,
    case_id_for,
    fold,
)

from .builders import T0, charge, complaint, file, history, only


def test_complaints_about_the_same_charge_share_a_case() -> None:
    a = complaint(complaint_id="a", charge_id="ch-9")
    b = complaint(complaint_id="b", charge_id="ch-9", category="charge_disputed")
    assert case_id_for(a) == case_id_for(b)


def test_complaints_about_the_same_order_share_a_case() -> None:
    a = complaint(complaint_id="a", charge_id=None, order_id="o-1")
    b = complaint(complaint_id="b", charge_id=None, order_id="o-1")
    assert case_id_for(a) == case_id_for(b)


def test_the_same_charge_id_of_two_customers_is_two_cases() -> None:
    a = complaint(complaint_id="a", customer_id="c1")
    b = complaint(complaint_id="b", customer_id="c2")
    assert case_id_for(a) != case_id_for(b)


def test_a_complaint_about_nothing_identifiable_is_its_own_case() -> None:
    a = complaint("other", complaint_id="a", charge_id=None)
    b = complaint("other", complaint_id="b", charge_id=None)
    assert case_id_for(a) != case_id_for(b)


def test_the_case_id_is_a_pinned_uuid() -> None:
    # A literal: a case id derived otherwise would split recorded cases on replay.
    assert case_id_for(complaint()) == "ec7b8ded-f378-5773-ab31-f242fb416a41"
    assert case_id_for(complaint(complaint_id="other")) == "ec7b8ded-f378-5773-ab31-f242fb416a41"


def test_opening_a_case_names_its_owner_and_a_ten_hour_deadline() -> None:
    events, case = file(complaint("service_failure", locale="es-CO"))
    opened = only(events, CaseOpened)
    assert opened.sla_deadline == T0 + timedelta(hours=10)
    assert opened.case_owner.id in {"owner-lucia", "owner-mateo"}
    assert opened.complaint_id == "cmp-1"
    assert (case.owner, case.filed_at, case.contacts) == (opened.case_owner, T0, 1)
    assert case.customer.locale == "es-CO"


def test_a_returning_customer_gets_the_same_owner() -> None:
    events, _ = file(complaint("service_failure"), past=history(previous_owner_id="owner-grace"))
    assert only(events, CaseOpened).case_owner.id == "owner-grace"


def test_the_same_complaint_twice_produces_nothing() -> None:
    _, case = file(complaint("service_failure"))
    events, again = file(complaint("service_failure"), case=case)
    assert events == []
    assert again == case


def test_a_complaint_of_another_case_is_refused() -> None:
    _, case = file(complaint("service_failure"))
    with pytest.raises(CaseMismatch):
        file(complaint("service_failure", complaint_id="x", charge_id="ch-2"), case=case)


def test_a_charge_other_than_the_one_named_is_refused() -> None:
    with pytest.raises(CaseMismatch):
        file(complaint(), charge(charge_id="ch-2"))


def test_folding_the_stream_rebuilds_the_same_case() -> None:
    events, case = file(complaint(), charge())
    assert fold(events) == case
    assert fold([]) is None


def test_every_event_round_trips_through_json_by_its_type() -> None:
    events, case = file(complaint(), charge())
    again = [CASE_EVENT_TYPES[e.TYPE].model_validate_json(e.model_dump_json()) for e in events]
    assert fold(again) == case


def test_internal_events_are_never_published() -> None:
    assert ContactAdded.TOPIC == "internal"
    assert {m.TOPIC for m in CASE_EVENT_TYPES.values()} == {"internal", "decisions"}


def test_an_event_before_the_case_was_opened_is_an_invalid_stream() -> None:
    with pytest.raises(InvalidStream):
        apply(None, SlaWarning(case_id="x", sla_deadline=T0, at=T0))


def test_a_case_cannot_be_opened_twice() -> None:
    events, case = file(complaint())
    with pytest.raises(InvalidStream):
        apply(case, events[0])


def test_an_event_of_another_case_is_an_invalid_stream() -> None:
    _, case = file(complaint())
    with pytest.raises(InvalidStream):
        apply(case, SlaWarning(case_id="other", sla_deadline=T0, at=T0))
