"""The recovery application on its in-memory twins (services/recovery/adapters/memory.py):
no server, the same ports the PostgreSQL adapters serve."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.common.clock import ManualClock
from services.common.contract.events import DecisionMade, Reason, Remedy
from services.common.settings import CommonSettings
from services.recovery.adapters.memory import MemoryUnitOfWork
from services.recovery.application import RELAY, RecoveryService, case_stream
from services.recovery.domain.errors import RemedyRejected
from services.recovery.domain.policy import load_policy
from services.recovery.domain.roster import load_roster
from services.recovery.errors import CaseNotFound, ConcurrencyConflict, RetriesExhausted
from tests.helpers import VOUCHERS
from tests.replay_world import T0, charge, complaint, records, refund


def _service(uow: MemoryUnitOfWork | None = None, clock: ManualClock | None = None) -> RecoveryService:
    return RecoveryService(None, CommonSettings(), load_policy(), load_roster(), clock or ManualClock(T0),
                           vouchers=VOUCHERS, uow=uow or MemoryUnitOfWork())  # fmt: skip


def _uow(service: RecoveryService) -> MemoryUnitOfWork:
    assert isinstance(service.uow, MemoryUnitOfWork)
    return service.uow


async def _stream(service: RecoveryService, case_id: str) -> list[str]:
    return [e.event_type for e in await _uow(service).store.read_stream(case_stream(case_id))]


def _published(service: RecoveryService) -> list[dict[str, Any]]:
    return [json.loads(m.value) for relay, m in _uow(service).outbox if relay == RELAY]


def _only_case(service: RecoveryService) -> str:
    (case_id,) = _uow(service).state.cases
    return case_id


async def test_a_charge_and_a_complaint_about_it_make_a_decision_recorded_projected_and_queued() -> None:
    service = _service()
    result = await service.handle_records(records([
        charge("cu-1", "ch-1", "4.99", "purchase", "digital", T0),
        complaint("cu-1", "cmp-1", "delivery_failed", T0, charge_id="ch-1"),
    ]))  # fmt: skip
    assert (result.accepted, result.decisions, result.escalations) == (2, 1, 0)
    assert result.rules == {"failed-delivery": 1}
    case_id = _only_case(service)
    assert "recovery.decision.made.v1" in await _stream(service, case_id)
    case, version = _uow(service).state.cases[case_id]
    assert case.status == "decided"
    assert version == len(await _stream(service, case_id))
    decided = [m for m in _published(service) if m["type"] == "recovery.decision.made.v1"]
    assert [d["data"]["remedies"][0]["amount"] for d in decided] == ["4.99"]
    assert _uow(service).state.concessions == {("cu-1", case_id, case.decisions[-1].decided_at)}


async def test_a_redelivered_batch_records_nothing_twice() -> None:
    service = _service()
    batch = records([
        charge("cu-1", "ch-1", "4.99", "purchase", "digital", T0),
        complaint("cu-1", "cmp-1", "delivery_failed", T0, charge_id="ch-1"),
    ])  # fmt: skip
    await service.handle_records(batch)
    events, queued = len(_uow(service).store._log), len(_uow(service).outbox)
    again = await service.handle_records(batch)
    assert (again.accepted, again.duplicates, again.decisions) == (0, 2, 0)
    assert (len(_uow(service).store._log), len(_uow(service).outbox)) == (events, queued)
    # Out of the inbox (pruned): decided again to the same events, which nothing records twice.
    _uow(service).inbox.clear()
    await service.handle_records(batch)
    assert (len(_uow(service).store._log), len(_uow(service).outbox)) == (events, queued)


async def test_the_same_records_give_the_same_events_in_one_batch_or_in_many() -> None:
    stories = [
        charge("cu-1", "ch-1", "4.99", "purchase", "digital", T0),
        complaint("cu-1", "cmp-1", "delivery_failed", T0, charge_id="ch-1"),
        complaint("cu-2", "cmp-2", "delivery_failed", T0, charge_id="ch-2"),  # before its charge
        charge("cu-2", "ch-2", "9.99", "purchase", "digital", T0),
        refund("cu-3", "ch-3", "1.00", T0),
        charge("cu-3", "ch-3", "12.00", "usage", None, T0),
    ]
    whole, apart = _service(), _service()
    await whole.handle_records(records(stories))
    for one in stories:
        await apart.handle_records(records([one]))

    def ids(service: RecoveryService) -> list[tuple[str, str]]:
        return sorted((e.stream_id, e.event_id) for e in _uow(service).store._log)

    assert ids(whole) == ids(apart)
    assert {m.event_id for _, m in _uow(whole).outbox} == {m.event_id for _, m in _uow(apart).outbox}


async def test_a_case_over_the_automatic_limit_is_escalated_and_a_person_decides_it_within_the_ledger() -> None:
    service = _service()
    result = await service.handle_records(records([
        charge("cu-1", "ch-1", "3000.00", "purchase", "physical", T0),
        complaint("cu-1", "cmp-1", "damaged_item", T0, charge_id="ch-1", claimed_amount="3000.00", currency="USD"),
    ]))  # fmt: skip
    assert (result.decisions, result.escalations) == (0, 1)
    case_id = _only_case(service)
    assert _uow(service).state.cases[case_id][0].status == "escalated"

    def refund_of(amount: str) -> Remedy:
        return Remedy(type="refund", amount=Decimal(amount), currency="USD", settlement="soon")

    with pytest.raises(RemedyRejected):
        await service.agent_decide(case_id, "a1", [refund_of("3000.01")], None)
    # Billing refunded part of it meanwhile: what remains is the most a person can grant.
    await service.handle_records(records([refund("cu-1", "ch-1", "1000.00", T0)]))
    with pytest.raises(RemedyRejected):
        await service.agent_decide(case_id, "a1", [refund_of("2000.01")], None)
    made = await service.agent_decide(case_id, "a1", [refund_of("2000.00")], None)
    assert isinstance(made, DecisionMade)
    assert made.decided_by == "agent:a1"
    assert made.outcome == "resolved"
    assert _uow(service).state.cases[case_id][0].status == "decided"
    assert _uow(service).state.timers == {}  # a decided case has no timers left


async def test_an_agent_decision_on_no_case_raises_case_not_found() -> None:
    with pytest.raises(CaseNotFound) as raised:
        await _service().agent_decide("nope", "a1", [], Reason(code="no_fault", text="x"))
    assert isinstance(raised.value, LookupError)


async def test_timers_fire_when_due_once_and_a_charge_that_never_came_is_waited_for_no_longer() -> None:
    clock = ManualClock(T0)
    service = _service(clock=clock)
    await service.handle_records(records([complaint("cu-1", "cmp-1", "charge_disputed", T0, charge_id="ch-x")]))
    case_id = _only_case(service)
    assert _uow(service).state.awaiting == {("ch-x", case_id)}
    due = await service.next_timer_due()
    assert due == T0 + timedelta(minutes=15)
    assert await service.fire_due_timers() == 0  # not due yet
    clock.advance(timedelta(minutes=16))
    assert await service.fire_due_timers() == 1
    assert await service.fire_due_timers() == 0  # never twice
    types = await _stream(service, case_id)
    assert types[-2:] == ["recovery.case.charge_awaited.v1", "recovery.case.escalated.v1"]
    assert {kind for _, kind in _uow(service).state.timers} == {"sla_warning", "sla_breach"}
    # The SLA's timers: the warning and the breach fire in their turn, each once.
    clock.advance(timedelta(hours=11))
    assert await service.fire_due_timers(limit=1) == 1
    assert await service.fire_due_timers(limit=1) == 1
    assert await service.fire_due_timers() == 0
    types = await _stream(service, case_id)
    assert (types.count("recovery.sla.warning.v1"), types.count("recovery.sla.breached.v1")) == (1, 1)
    assert await service.next_timer_due() is None


async def test_a_complaint_waiting_for_its_charge_is_decided_when_the_charge_comes() -> None:
    service = _service()
    await service.handle_records(records([complaint("cu-1", "cmp-1", "delivery_failed", T0, charge_id="ch-1")]))
    case_id = _only_case(service)
    assert _uow(service).state.cases[case_id][0].status != "decided"
    result = await service.handle_records(records([charge("cu-1", "ch-1", "4.99", "purchase", "digital", T0)]))
    assert result.decisions == 1
    assert _uow(service).state.cases[case_id][0].status == "decided"
    assert _uow(service).state.awaiting == set()


async def test_the_guardrail_counts_the_concessions_of_earlier_batches_and_of_this_one() -> None:
    service = _service()
    limit = load_policy().max_auto_concessions
    stories = []
    for i in range(limit + 1):
        stories += [charge("cu-1", f"ch-{i}", "4.99", "purchase", "digital", T0),
                    complaint("cu-1", f"cmp-{i}", "delivery_failed", T0, charge_id=f"ch-{i}")]  # fmt: skip
    first = await service.handle_records(records(stories[:2]))
    rest = await service.handle_records(records(stories[2:]))
    assert first.decisions + rest.decisions == limit
    assert rest.escalations == 1


async def test_a_batch_that_keeps_losing_races_is_rolled_back_and_raises_retries_exhausted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = _service()

    async def losing(*args: Any) -> Any:
        raise ConcurrencyConflict("case-x")

    monkeypatch.setattr(service, "_handle", losing)
    with pytest.raises(RetriesExhausted):
        await service.handle_records(records([charge("cu-1", "ch-1", "4.99", "purchase", "digital", T0)]))
    assert _uow(service).inbox == set()
    assert _uow(service).store._log == []


async def test_timers_that_keep_losing_races_raise_retries_exhausted(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = ManualClock(T0)
    service = _service(clock=clock)
    await service.handle_records(records([complaint("cu-1", "cmp-1", "charge_disputed", T0, charge_id="ch-x")]))
    clock.advance(timedelta(minutes=16))
    real = MemoryUnitOfWork.transaction

    def racing(self: MemoryUnitOfWork) -> Any:
        ctx = real(self)

        class Losing:
            async def __aenter__(self) -> Any:
                return await ctx.__aenter__()

            async def __aexit__(self, *exc: Any) -> Any:
                await ctx.__aexit__(ConcurrencyConflict, ConcurrencyConflict("case-x"), None)
                raise ConcurrencyConflict("case-x")

        return Losing()

    monkeypatch.setattr(MemoryUnitOfWork, "transaction", racing)
    with pytest.raises(RetriesExhausted):
        await service.fire_due_timers()
    monkeypatch.undo()
    assert await service.fire_due_timers() == 1  # nothing fired meanwhile: rolled back each time


async def test_the_caller_paces_the_batch_and_is_told_its_customers_before_it_reads() -> None:
    paced = 0

    async def pace() -> None:
        nonlocal paced
        paced += 1

    told: list[frozenset[str]] = []

    async def ready(keys: frozenset[str]) -> None:
        told.append(keys)

    service = RecoveryService(None, CommonSettings(), load_policy(), load_roster(), ManualClock(T0),
                              vouchers=VOUCHERS, uow=MemoryUnitOfWork(), pace=pace)  # fmt: skip
    await service.handle_records(records([
        charge("cu-1", "ch-1", "4.99", "purchase", "digital", T0),
        complaint("cu-2", "cmp-2", "delivery_failed", T0, charge_id="ch-2"),
    ]), ready)  # fmt: skip
    assert told == [frozenset({"cu-1", "cu-2"})]
    assert paced >= 2  # once after each record at least
