"""A varied past for what-if runs, made by the real recovery service in-process.

``timeline`` draws charges, complaints and people's decisions (deterministic for a seed):
every rule of the policy, repeat contacts, escalations decided by an agent or left to
breach their SLA, complaints before their charge or about a charge that never comes, a
customer who hits the guardrail, anomalies against the customer's own history, returning
customers, and USD, EUR, COP and JPY (a currency without limits). ``play`` feeds it to a
``RecoveryService`` on a ``ManualClock`` in time order, firing the SLA timers as the clock
passes them, so the event store ends up holding exactly what the service records live.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import groupby
from typing import Any

from services.common.clock import ManualClock
from services.common.contract.events import ComplaintFiled, Reason, Remedy
from services.common.records import InboundRecord
from services.recovery.application import RecoveryService
from services.recovery.domain import CommandRejected, case_id_for

START = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
RATES = {"USD": Decimal(1), "EUR": Decimal(1), "COP": Decimal(4000), "JPY": Decimal(150)}
LOCALES = ("en-US", "es-CO", "es-ES", "en-GB")


@dataclass(frozen=True)
class Action:
    at: datetime
    kind: str  # charge | complaint | agent
    event: dict[str, Any] | None = None
    case_id: str = ""
    remedies: tuple[Remedy, ...] = ()
    decline: Reason | None = None


@dataclass
class Timeline:
    actions: list[Action] = field(default_factory=list)
    complaints: int = 0
    scenarios: dict[str, str] = field(default_factory=dict)  # case id -> scenario
    money: dict[str, tuple[str, Decimal]] = field(default_factory=dict)  # case id -> (currency, amount)

    def sorted(self) -> list[Action]:
        order = {"charge": 0, "complaint": 1, "agent": 2}
        return sorted(self.actions, key=lambda a: (a.at, order[a.kind]))


def amount(usd: Decimal | str, currency: str) -> str:
    value = Decimal(usd) * RATES[currency]
    return f"{value:.2f}" if currency in ("USD", "EUR") else str(int(value))


def _ce(type_: str, subject: str, data: dict[str, Any], at: datetime, event_id: str) -> dict[str, Any]:
    return {"specversion": "1.0", "id": event_id, "source": "history", "type": type_, "time": at.isoformat(),
            "subject": subject, "datacontenttype": "application/json", "data": data}  # fmt: skip


class _Maker:
    def __init__(self, rng: random.Random, tag: str) -> None:
        self.rng = rng
        self.tag = tag
        self.n = 0
        self.t = Timeline()

    def next_id(self, kind: str) -> str:
        self.n += 1
        return f"{self.tag}-{kind}{self.n}"

    def customer(self) -> dict[str, Any]:
        cid = self.next_id("cust")
        return {"id": cid, "name": "Customer", "email": f"{cid}@example.com", "locale": self.rng.choice(LOCALES)}

    def charge(self, cust: dict[str, Any], usd: str, currency: str, kind: str, at: datetime,
               product: str | None = "digital", charge_id: str | None = None) -> str:  # fmt: skip
        charge_id = charge_id or self.next_id("ch")
        data: dict[str, Any] = {"charge_id": charge_id, "customer_id": cust["id"], "amount": amount(usd, currency),
                                "currency": currency, "kind": kind, "description": "item",
                                "posted_at": at.isoformat()}  # fmt: skip
        if product:
            data["product"] = {"type": product}
        event = _ce("billing.charge.posted.v1", cust["id"], data, at, self.next_id("evc"))
        self.t.actions.append(Action(at, "charge", event))
        return charge_id

    def complaint(self, cust: dict[str, Any], category: str, at: datetime, scenario: str, **fields: Any) -> str:
        data: dict[str, Any] = {"complaint_id": self.next_id("cmp"), "customer": cust, "channel": "web",
                                "category": category, "description": "text", "filed_at": at.isoformat(),
                                **fields}  # fmt: skip
        event = _ce("complaint.filed.v1", cust["id"], data, at, self.next_id("evp"))
        self.t.actions.append(Action(at, "complaint", event))
        self.t.complaints += 1
        case_id = case_id_for(ComplaintFiled.model_validate(data))
        self.t.scenarios.setdefault(case_id, scenario)
        return case_id

    def agent(self, case_id: str, at: datetime, usd: str | None, currency: str, charge_id: str | None = None) -> None:
        if usd is None:
            reason = Reason(code="agent_declined", text="We checked and the charge is right.")
            self.t.actions.append(Action(at, "agent", case_id=case_id, decline=reason))
            return
        refund = Remedy(type="refund", charge_id=charge_id, amount=Decimal(amount(usd, currency)), currency=currency,
                        settlement="3-5 business days")  # fmt: skip
        self.t.actions.append(Action(at, "agent", case_id=case_id, remedies=(refund,)))

    def hours(self, low: float, high: float) -> timedelta:
        return timedelta(seconds=int(self.rng.uniform(low, high) * 3600))


def _currency(rng: random.Random) -> str:
    return rng.choices(("USD", "EUR", "COP", "JPY"), weights=(50, 25, 20, 5))[0]


def _scenario(m: _Maker, t: datetime) -> None:
    rng = m.rng
    cur = _currency(rng)
    cust = m.customer()
    before = t - timedelta(days=rng.randint(1, 20))
    pick = rng.choices(
        ("failed", "micro", "mid", "anomaly", "damaged", "defective", "cancel", "service", "repeat",
         "charge_later", "charge_never", "guardrail", "returning"),
        weights=(14, 12, 8, 5, 8, 8, 8, 8, 5, 6, 4, 3, 5),
    )[0]  # fmt: skip
    if pick == "failed":
        usd = rng.choice(("0.99", "4.99", "19.99", "49.99", "120.00"))
        ch = m.charge(cust, usd, cur, "purchase", before)
        case = m.complaint(cust, "delivery_failed", t, pick, charge_id=ch)
        m.agent(case, t + m.hours(0.5, 6), usd, cur, ch)
    elif pick == "micro":
        ch = m.charge(cust, rng.choice(("0.50", "1.25", "2.70")), cur, "long_distance", before, None)
        case = m.complaint(cust, "charge_disputed", t, pick, charge_id=ch)
        m.agent(case, t + m.hours(1, 5), None, cur)
    elif pick == "mid":
        usd = rng.choice(("2.80", "3.50", "4.99", "5.00", "7.50"))
        ch = m.charge(cust, usd, cur, "late_fee", before, None)
        case = m.complaint(cust, "charge_disputed", t, pick, charge_id=ch)
        m.t.money[case] = (cur, Decimal(amount(usd, cur)))
        m.agent(case, t + m.hours(0.5, 8), usd if rng.random() < 0.7 else None, cur, ch)
    elif pick == "anomaly":
        for d in (60, 45, 30):
            m.charge(cust, "15.00", cur, "shipping", t - timedelta(days=d), "physical")
        usd = rng.choice(("7455.00", "250.00", "30000.00"))
        ch = m.charge(cust, usd, cur, "shipping", t - timedelta(days=2), "physical")
        case = m.complaint(cust, "charge_disputed", t, pick, charge_id=ch)
        m.agent(case, t + m.hours(1, 9), "100.00", cur, ch)
    elif pick == "damaged":
        usd = rng.choice(("80.00", "1200.00", "2000.00"))
        case = m.complaint(cust, "damaged_item", t, pick, order_id=m.next_id("ord"), claimed_amount=amount(usd, cur),
                           currency=cur)  # fmt: skip
        m.agent(case, t + m.hours(1, 9), usd, cur)
    elif pick == "defective":
        years = rng.choice((0, 1, 4))
        bought = t - timedelta(days=100 + 365 * years)
        case = m.complaint(cust, "defective_product", t, pick, order_id=m.next_id("ord"),
                           purchased_at=bought.isoformat(),
                           remedy_preference=rng.choice(("repair", "replacement", "credit")))  # fmt: skip
        m.agent(case, t + m.hours(1, 9), "60.00", cur)
    elif pick == "cancel":
        ch = m.charge(cust, "30.00", cur, "subscription", t - timedelta(days=rng.randint(1, 40)), "service")
        m.complaint(cust, "cancellation", t, pick, charge_id=ch)
    elif pick == "service":
        usd = rng.choice(("20.00", "80.00"))
        case = m.complaint(cust, "service_failure", t, pick, order_id=m.next_id("ord"), claimed_amount=amount(usd, cur),
                           currency=cur)  # fmt: skip
        if rng.random() < 0.5:  # else nobody decides in time: the SLA breach and its fallback
            m.agent(case, t + m.hours(0.5, 9), usd, cur)
    elif pick == "repeat":
        ch = m.charge(cust, "120.00", cur, "purchase", before)
        case = m.complaint(cust, "delivery_failed", t, pick, charge_id=ch)
        m.complaint(cust, "delivery_failed", t + m.hours(0.2, 1), pick, charge_id=ch)
        m.complaint(cust, "delivery_failed", t + m.hours(1.1, 2), pick, charge_id=ch)
        m.agent(case, t + m.hours(2.5, 7), "120.00", cur, ch)
    elif pick == "charge_later":
        ch_id = m.next_id("ch")
        case = m.complaint(cust, "delivery_failed", t, pick, charge_id=ch_id)
        m.charge(cust, "4.99", cur, "purchase", t + timedelta(minutes=rng.randint(1, 12)), charge_id=ch_id)
        m.agent(case, t + m.hours(1, 5), "4.99", cur, ch_id)
    elif pick == "charge_never":
        case = m.complaint(cust, "charge_disputed", t, pick, charge_id=m.next_id("ch"))
        m.agent(case, t + m.hours(1, 9), None, cur)
    elif pick == "guardrail":
        for i in range(5):
            at = t + timedelta(days=3 * i, minutes=rng.randint(0, 59))
            ch = m.charge(cust, "1.50", cur, "late_fee", at - timedelta(days=1), None)
            case = m.complaint(cust, "charge_disputed", at, pick, charge_id=ch)
            m.agent(case, at + m.hours(1, 6), "1.50", cur, ch)
    else:  # returning customer: a damaged item, then a cancellation weeks later
        case = m.complaint(cust, "damaged_item", t, pick, order_id=m.next_id("ord"), claimed_amount=amount("40", cur),
                           currency=cur)  # fmt: skip
        m.agent(case, t + m.hours(1, 5), "40.00", cur)
        later = t + timedelta(days=rng.randint(5, 40))
        ch = m.charge(cust, "30.00", cur, "subscription", later - timedelta(days=5), "service")
        m.complaint(cust, "cancellation", later, pick, charge_id=ch)


def timeline(scenarios: int, *, seed: int = 7, days: int = 90, start: datetime = START, tag: str = "h") -> Timeline:
    """``scenarios`` stories spread over ``days`` from ``start`` (about 1.3 complaints each)."""
    rng = random.Random(seed)
    m = _Maker(rng, tag)
    span = days * 24 * 3600
    for _ in range(scenarios):
        _scenario(m, start + timedelta(seconds=rng.randrange(span)))
    return m.t


async def advance(svc: RecoveryService, clock: ManualClock, to: datetime, latency: timedelta) -> None:
    """Move the clock to ``to``, firing every timer that falls due on the way (a little late,
    as the live timer loop does)."""
    while (due := await svc.next_timer_due()) is not None and due <= to:
        clock.now = max(clock.now, min(due + latency, to))
        await svc.fire_due_timers()
    clock.now = max(clock.now, to)


async def _agent(svc: RecoveryService, a: Action) -> bool:
    try:
        await svc.agent_decide(a.case_id, "agent-7", a.remedies, a.decline)
    except (CommandRejected, LookupError):
        return False  # decided by the policy (or not escalated): no person needed
    return True


async def play(
    svc: RecoveryService,
    clock: ManualClock,
    actions: Sequence[Action],
    topics: tuple[str, str],
    *,
    latency: timedelta = timedelta(seconds=3),
    batch: timedelta = timedelta(0),
    progress: Callable[[int], None] | None = None,
) -> int:
    """Feed ``actions`` (sorted) to the service; actions within ``batch`` of the first of a
    group go in one batch. Returns how many agent decisions were made (the rest found the
    case already decided)."""
    charges_topic, complaints_topic = topics
    decided = 0
    offset = 0
    groups: list[list[Action]] = []
    for _, same in groupby(actions, key=lambda a: a.at):
        group = list(same)
        if groups and batch and group[0].at - groups[-1][0].at <= batch:
            groups[-1].extend(group)
        else:
            groups.append(group)
    for group in groups:
        await advance(svc, clock, group[-1].at, latency)
        records = []
        for a in group:
            if a.event is not None:
                topic = charges_topic if a.kind == "charge" else complaints_topic
                records.append(
                    InboundRecord(topic, 0, offset, a.event["subject"].encode(), json.dumps(a.event).encode())
                )
                offset += 1
        if records:
            await svc.handle_records(records)
        # People work in parallel: their decisions touch one case each and no customer history.
        agents = [a for a in group if a.kind == "agent"]
        for start in range(0, len(agents), 8):
            done = await asyncio.gather(*(_agent(svc, a) for a in agents[start : start + 8]))
            decided += sum(done)
        if progress is not None:
            progress(sum(1 for a in group if a.kind == "complaint"))
    return decided
