"""Properties over generated complaints: deterministic, never a machine's no, exact money."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.contract import encode
from services.common.contract.events import DecisionMade, EventData
from services.common.contract.money import minor_units, quantize
from services.common.records import envelope, seal
from services.recovery.domain import (
    Case,
    ChargeFacts,
    CustomerHistory,
    FileComplaint,
    FireTimer,
    Policy,
    apply,
    decide,
    pending_timers,
)
from services.recovery.domain.policy import CurrencyLimits

from .builders import CODES, POLICY, ROSTER, T0, complaint

JPY = CurrencyLimits.model_validate(
    dict.fromkeys(CurrencyLimits.model_fields, "7500")
    | {"micro_claim_limit": "400", "anomaly_auto_limit": "1500000", "goodwill_cap": "30000"}
)
# JPY (no decimals) gets limits; KWD (three decimals) has none and must escalate.
WIDE = POLICY.model_copy(update={"limits": {**POLICY.limits, "JPY": JPY}})
CURRENCIES = ["USD", "EUR", "COP", "JPY", "KWD"]


def money(currency: str, top: int = 10**7) -> st.SearchStrategy[Decimal]:
    places = minor_units(currency)
    return st.integers(1, top * 10**places).map(lambda n: Decimal(n).scaleb(-places))


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[FileComplaint, Any]:
    currency = draw(st.sampled_from(CURRENCIES))
    has_charge = draw(st.booleans())
    usual = st.none() | st.decimals(Decimal("0.001"), Decimal(10**6), places=3)
    the_charge = None
    if has_charge:
        the_charge = ChargeFacts(
            charge_id="ch-1",
            customer_id=draw(st.sampled_from(["cust-1", "cust-1", "cust-1", "other"])),
            amount=draw(money(currency)),
            currency=currency,
            kind=draw(st.sampled_from(["purchase", "subscription", "usage", "fee", "shipping"])),
            product_type=draw(st.sampled_from(["digital", "physical", "service", None])),
            posted_at=T0 - timedelta(days=draw(st.integers(0, 5 * 365))),
            usual_customer_amount=draw(usual),
            usual_all_amount=draw(usual),
        )
    claimed = draw(st.none() | money(currency, 5000))
    fields: dict[str, Any] = {
        "charge_id": "ch-1" if has_charge or draw(st.booleans()) else None,
        "order_id": "o-1",
        "claimed_amount": None if claimed is None else str(claimed),
        "currency": None if claimed is None else currency,
        "remedy_preference": draw(st.sampled_from([None, "refund", "repair", "replacement", "credit"])),
        "purchased_at": draw(st.none() | st.integers(0, 4 * 365).map(lambda d: T0 - timedelta(days=d))),
        "locale": draw(st.sampled_from(["es-CO", "en-US", "es-ES", "de-DE"])),
    }
    category = draw(
        st.sampled_from(
            ["delivery_failed", "charge_disputed", "damaged_item", "defective_product",
             "cancellation", "service_failure", "other"]
        )
    )  # fmt: skip
    days = draw(st.lists(st.integers(0, 120), max_size=5))
    past = CustomerHistory(concession_times=tuple(T0 - timedelta(days=d) for d in days))
    command = FileComplaint(complaint=complaint(category, **fields), charge=the_charge, history=past)
    delay = timedelta(minutes=draw(st.integers(0, 16 * 60)))
    return command, delay


def _check(events: list[EventData]) -> None:
    for event in events:
        # The domain builds its events without validating them (services.recovery.domain.
        # build): each must still be exactly what validation would have made of it.
        assert type(event).model_validate(event.model_dump()) == event, event
        # Encoded once for the store and Kafka: the same bytes as the envelope model's.
        ids: dict[str, Any] = {"event_id": "e-1", "source": "recovery-service", "time": T0, "subject": "cust-1",
                               "correlation_id": "c-1", "causation_id": "m-1"}  # fmt: skip
        sealed, ev = seal(event, **ids), envelope(event, **ids)
        assert sealed.value == encode(ev)
        assert sealed.stored.data == ev.data
        if isinstance(event, DecisionMade):
            assert event.decided_by != "policy" or event.outcome == "resolved"
            for remedy in event.remedies:
                if remedy.amount is not None:
                    assert remedy.currency is not None
                    assert quantize(remedy.amount, remedy.currency) == remedy.amount
                    assert remedy.amount > 0


def _step(case: Case | None, command: Any, now: Any, policy: Policy) -> tuple[list[EventData], Case]:
    events = decide(case, command, now, policy, ROSTER, CODES)
    again = decide(case, command, now, policy, ROSTER, CODES)
    assert [e.model_dump_json() for e in events] == [e.model_dump_json() for e in again]
    _check(events)
    for event in events:
        case = apply(case, event)
    assert case is not None
    assert Case.model_validate(case.model_dump()) == case
    return events, case


# No example database: the run leaves nothing in the working tree.
@settings(max_examples=300, deadline=None, database=None)
@given(scenarios())
def test_decide_is_deterministic_and_never_declines_by_machine(scenario: Any) -> None:
    command, delay = scenario
    now = command.complaint.filed_at + delay
    _, case = _step(None, command, now, WIDE)
    # Then let every timer fire, soonest first, until none is left: each firing must move on.
    for _ in range(10):
        timers = pending_timers(case, WIDE)
        if not timers:
            break
        timer = timers[0]
        fired_at = max(now, timer.due_at)
        _, case = _step(case, FireTimer(kind=timer.kind, due_at=timer.due_at), fired_at, WIDE)
        assert timer not in pending_timers(case, WIDE)
    assert pending_timers(case, WIDE) == []
    assert case.status in ("decided", "escalated")
    assert case.status == "decided" or case.breached
