"""What a case came to, on either side of a what-if: read from its events as stored.

Both sides are summarised from the same thing, each event's type and its stored ``data``
(``model_dump(mode="json", exclude_none=True)``, what the service appends), so the recorded
history and the simulation are measured by one ruler. No names, emails or free text are
kept: ids, rules, reason codes, remedy types and amounts only.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

CASE_OPENED = "recovery.case.opened.v1"
CONTACT_ADDED = "recovery.case.contact_added.v1"
CHARGE_LINKED = "recovery.case.charge_linked.v1"
CHARGE_AWAITED = "recovery.case.charge_awaited.v1"
ESCALATED = "recovery.case.escalated.v1"
DECISION = "recovery.decision.made.v1"
BREACHED = "recovery.sla.breached.v1"
FALLBACK_RULE = "sla-breach-fallback"

Remedy = tuple[str, Decimal | None, str | None]
"""A remedy as compared: type, amount, currency (codes and expiry dates left out)."""


@dataclass(frozen=True, slots=True)
class DecisionSig:
    """One decision as the what-if compares it."""

    rule: str
    decided_by: str
    outcome: str
    remedies: tuple[Remedy, ...]
    within_sla: bool


@dataclass
class Outcome:
    """One side (recorded, or simulated) of one case."""

    label: str = ""
    status: str = "open"
    decisions: list[DecisionSig] = field(default_factory=list)
    escalations: int = 0
    breaches: int = 0
    contacts: int = 0
    money: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    policies: set[str] = field(default_factory=set)
    decided_at: list[str] = field(default_factory=list)
    digest: str = ""

    def signature(self) -> tuple[object, ...]:
        """What must match for the case to count as decided the same."""
        return (self.status, tuple(self.decisions), self.escalations)

    @property
    def rule(self) -> str:
        """The rule of the case's latest decision, or its state when none was made."""
        return self.decisions[-1].rule if self.decisions else self.status

    @property
    def decided_by(self) -> str:
        return self.decisions[-1].decided_by if self.decisions else ""

    @property
    def within_sla(self) -> int:
        return sum(1 for d in self.decisions if d.within_sla)

    @property
    def by_person(self) -> int:
        return sum(1 for d in self.decisions if d.decided_by != "policy")

    @property
    def fallbacks(self) -> int:
        """Decisions the breach fallback granted."""
        return sum(1 for d in self.decisions if d.rule == FALLBACK_RULE)

    def money_in(self, currency: str) -> Decimal:
        return sum((v for (_, c), v in self.money.items() if c == currency), Decimal(0))

    def currencies(self) -> set[str]:
        return {c for _, c in self.money}


class OutcomeBuilder:
    """Feeds events one by one into an :class:`Outcome` and a digest of the stream."""

    def __init__(self) -> None:
        self.outcome = Outcome()
        self.filed_at = ""
        self.customer_id = ""
        self.currency: str | None = None
        self._hash = hashlib.blake2b(digest_size=16)

    def add(self, event_type: str, data: dict[str, Any]) -> None:
        self._hash.update(event_type.encode())
        hashed = data
        if event_type == DECISION:  # the same decision under another policy version is still the same
            hashed = {**data, "policy": {"rule": data["policy"]["rule"]}}
        self._hash.update(json.dumps(hashed, sort_keys=True, separators=(",", ":")).encode())
        o = self.outcome
        if event_type == CASE_OPENED:
            self.customer_id = str(data["customer_id"])
        elif event_type == CONTACT_ADDED:
            o.contacts += 1
            complaint = data["complaint"]
            if data["contact"] == 1:
                self.filed_at = str(complaint["filed_at"])
                self.currency = self.currency or complaint.get("currency")
        elif event_type == CHARGE_LINKED:
            self.currency = data["charge"]["currency"]
            o.status = "open" if o.status == "awaiting_charge" else o.status
        elif event_type == CHARGE_AWAITED:
            o.status = "awaiting_charge"
        elif event_type == ESCALATED:
            if o.status != "escalated":
                o.escalations += 1
            o.label = o.label or f"escalated:{data['reason']['code']}"
            o.status = "escalated"
        elif event_type == DECISION:
            self._decision(data)
        elif event_type == BREACHED:
            o.breaches += 1

    def _decision(self, data: dict[str, Any]) -> None:
        o = self.outcome
        remedies = []
        for r in data["remedies"]:
            amount = Decimal(r["amount"]) if "amount" in r else None
            currency = r.get("currency")
            remedies.append((str(r["type"]), amount, currency))
            if amount is not None and currency is not None:
                key = (str(r["type"]), str(currency))
                o.money[key] = o.money.get(key, Decimal(0)) + amount
        policy = data["policy"]
        rule = str(policy["rule"])
        if data["decided_by"] == "policy":
            o.policies.add(f"{policy['id']} v{policy['version']}")
        o.decisions.append(
            DecisionSig(rule, str(data["decided_by"]), str(data["outcome"]), tuple(remedies), bool(data["within_sla"]))
        )
        o.decided_at.append(str(data["decided_at"]))
        o.label = o.label or rule
        o.status = "decided"

    def finish(self) -> Outcome:
        self.outcome.digest = self._hash.hexdigest()
        return self.outcome
