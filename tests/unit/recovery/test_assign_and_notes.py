"""Claim, reassign and notes: a person takes an escalated case or hands it on, and writes
notes on any case, without deciding it."""

from __future__ import annotations

import pytest

from services.recovery.domain import Case
from services.recovery.domain.commands import AddNote, AssignCase
from services.recovery.domain.errors import CaseNotAwaitingAgent
from services.recovery.domain.events import CASE_EVENT_TYPES, CaseAssigned, NoteAdded

from .builders import charge, complaint, file, only, run


def escalated() -> Case:
    _, case = file(complaint("service_failure"), charge("2000.00"))
    assert case.status == "escalated"
    return case


def test_a_claim_makes_the_case_the_claimants_and_a_second_claim_changes_nothing() -> None:
    case = escalated()
    events, after = run(case, AssignCase(person_id="ana", assignee="ana"))
    assigned = only(events, CaseAssigned)
    assert (assigned.assignee, assigned.assigned_by) == ("ana", "agent:ana")
    assert after.escalation is not None
    assert after.escalation.assignee == "ana"
    again, _ = run(after, AssignCase(person_id="ana", assignee="ana"))
    assert again == []


def test_a_reassignment_hands_the_case_to_another_and_the_event_round_trips() -> None:
    events, after = run(escalated(), AssignCase(person_id="sam", assignee="owner-grace"))
    assigned = only(events, CaseAssigned)
    assert after.escalation is not None
    assert after.escalation.assignee == "owner-grace"
    assert assigned.assigned_by == "agent:sam"
    assert CASE_EVENT_TYPES[CaseAssigned.TYPE].model_validate_json(assigned.model_dump_json()) == assigned


def test_only_an_escalated_case_is_assigned() -> None:
    _, decided = file(complaint("delivery_failed"), charge("4.99"))
    assert decided.status == "decided"
    with pytest.raises(CaseNotAwaitingAgent):
        run(decided, AssignCase(person_id="ana", assignee="ana"))


def test_a_note_changes_nothing_but_the_stream_on_any_case() -> None:
    _, decided = file(complaint("delivery_failed"), charge("4.99"))
    events, after = run(decided, AddNote(person_id="ana", note="called the customer back"))
    note = only(events, NoteAdded)
    assert (note.by, note.note) == ("agent:ana", "called the customer back")
    assert after == decided
    with pytest.raises(CaseNotAwaitingAgent):
        run(None, AddNote(person_id="ana", note="x"))
