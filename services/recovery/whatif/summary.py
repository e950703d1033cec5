"""The what-if's figures, from the per-case results: pure arithmetic, no rendering.

Money is kept per currency and per remedy type and never added across currencies. Every
total is the sum of the per-case amounts it is made of, so the CSV of changed cases adds
up to the difference between the totals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from services.recovery.domain import Policy
from services.recovery.whatif.outcome import Outcome
from services.recovery.whatif.simulate import CaseResult

Pair = tuple[Decimal, Decimal]
"""(before, after): the policy in force, as recorded, and the candidate."""


def _add(table: dict[str, Pair], key: str, before: Decimal, after: Decimal) -> None:
    b, a = table.get(key, (Decimal(0), Decimal(0)))
    table[key] = (b + before, a + after)


@dataclass
class Change:
    """Cases that went from one outcome to another (by rule, or escalation reason)."""

    before: str
    after: str
    cases: int = 0
    examples: list[str] = field(default_factory=list)
    money: dict[str, Pair] = field(default_factory=dict)


@dataclass
class Month:
    escalations: tuple[int, int] = (0, 0)
    money: dict[str, Pair] = field(default_factory=dict)


@dataclass
class Summary:
    """Everything the report shows."""

    candidate: str
    in_force: list[str]
    since: datetime | None
    until: datetime | None
    horizon: datetime | None
    cases: int = 0
    complaints: int = 0
    changed: int = 0
    exact: int = 0
    changes: list[Change] = field(default_factory=list)
    money: dict[tuple[str, str], Pair] = field(default_factory=dict)  # (currency, remedy type)
    money_total: dict[str, Pair] = field(default_factory=dict)
    escalations: tuple[int, int] = (0, 0)
    escalations_by_currency: dict[str, tuple[int, int]] = field(default_factory=dict)
    cost_per_contact: dict[str, Decimal] = field(default_factory=dict)
    handling_cost: dict[str, Pair] = field(default_factory=dict)
    by_person: tuple[int, int] = (0, 0)
    assumed_person: int = 0
    person_skipped: int = 0
    decisions: tuple[int, int] = (0, 0)
    within_sla: tuple[int, int] = (0, 0)
    breaches: tuple[int, int] = (0, 0)
    fallbacks: tuple[int, int] = (0, 0)
    open_at_end: tuple[int, int] = (0, 0)
    months: dict[str, Month] = field(default_factory=dict)

    def handling_cost_avoided(self, currency: str) -> Decimal:
        before, after = self.handling_cost.get(currency, (Decimal(0), Decimal(0)))
        return before - after

    def sla_attainment(self) -> tuple[float | None, float | None]:
        return tuple(  # type: ignore[return-value]
            (w / d if d else None) for w, d in zip(self.within_sla, self.decisions, strict=True)
        )


def case_currency(result: CaseResult, policy: Policy) -> str:
    """The currency a case's handling cost is counted in (the fallback where it has none)."""
    currency = result.currency
    return currency if currency is not None and currency in policy.limits else policy.fallback_currency


def costs(policy: Policy, overrides: Mapping[str, Decimal] | None = None) -> dict[str, Decimal]:
    """Handling cost per contact by currency: the policy's, with ``overrides`` winning."""
    out = {cur: limits.handling_cost_per_contact for cur, limits in policy.limits.items()}
    out.update(overrides or {})
    return out


def _pairs(o: Outcome, n: Outcome, f: str) -> tuple[int, int]:
    return int(getattr(o, f)), int(getattr(n, f))


def _plus(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    return a[0] + b[0], a[1] + b[1]


def summarise(
    results: Sequence[CaseResult],
    policy: Policy,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    horizon: datetime | None = None,
    cost_overrides: Mapping[str, Decimal] | None = None,
    examples: int = 3,
) -> Summary:
    """Add the per-case results up."""
    in_force = sorted({p for r in results for p in r.before.policies})
    candidate = f"{policy.id} v{policy.version}"
    s = Summary(candidate=candidate, in_force=in_force, since=since, until=until, horizon=horizon)
    s.cost_per_contact = costs(policy, cost_overrides)
    changes: dict[tuple[str, str], Change] = {}
    for r in sorted(results, key=lambda r: (r.filed_at, r.case_id)):
        b, a = r.before, r.after
        s.cases += 1
        s.complaints += b.contacts
        s.exact += r.exact
        s.assumed_person += r.assumed_person
        s.person_skipped += r.person_skipped
        s.escalations = _plus(s.escalations, _pairs(b, a, "escalations"))
        s.by_person = _plus(s.by_person, _pairs(b, a, "by_person"))
        s.within_sla = _plus(s.within_sla, _pairs(b, a, "within_sla"))
        s.breaches = _plus(s.breaches, _pairs(b, a, "breaches"))
        s.fallbacks = _plus(s.fallbacks, _pairs(b, a, "fallbacks"))
        s.decisions = _plus(s.decisions, (len(b.decisions), len(a.decisions)))
        s.open_at_end = _plus(s.open_at_end, (b.status != "decided", a.status != "decided"))
        currency = case_currency(r, policy)
        esc = s.escalations_by_currency.get(currency, (0, 0))
        s.escalations_by_currency[currency] = _plus(esc, _pairs(b, a, "escalations"))
        cost = s.cost_per_contact.get(currency, Decimal(0))
        _add(s.handling_cost, currency, cost * b.escalations, cost * a.escalations)
        month = s.months.setdefault(r.month, Month())
        month.escalations = _plus(month.escalations, _pairs(b, a, "escalations"))
        for key in set(b.money) | set(a.money):
            before, after = b.money.get(key, Decimal(0)), a.money.get(key, Decimal(0))
            kind, cur = key
            mb, ma = s.money.get((cur, kind), (Decimal(0), Decimal(0)))
            s.money[(cur, kind)] = (mb + before, ma + after)
            _add(s.money_total, cur, before, after)
            _add(month.money, cur, before, after)
        if not r.changed:
            continue
        s.changed += 1
        key = (b.label or b.status, a.label or a.status)
        change = changes.setdefault(key, Change(*key))
        change.cases += 1
        if len(change.examples) < examples:
            change.examples.append(r.case_id)
        for cur in b.currencies() | a.currencies():
            _add(change.money, cur, b.money_in(cur), a.money_in(cur))
    s.changes = sorted(changes.values(), key=lambda c: (-c.cases, c.before, c.after))
    s.months = dict(sorted(s.months.items()))
    return s
