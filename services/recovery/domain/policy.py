"""The versioned recovery policy (docs/policy.md): every number a rule reads.

The shipped default lives in ``services/recovery/policy/default.toml``; ``Policy()`` with no
arguments is the same policy, so a test can build a variant with ``model_copy(update=...)``.
Every decision names ``policy.id``, ``policy.version`` and the rule that fired, which is what
lets a what-if replay say which version would have decided differently.

Money limits are per currency (``limits.USD.auto_refund_limit``); a currency without an
entry has no automatic decisions that compare with a limit: such complaints escalate.
``approval_limits`` are the people's: the most an agent's decision on a case may grant in
money (refunds, waivers and vouchers together) without a supervisor's approval; in a
currency without one, every agent's decision granting money needs it.
"""

from __future__ import annotations

import functools
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.common.contract.events import PolicyRef, Priority
from services.common.contract.money import Amount, Currency, check_minor_units
from services.recovery.domain import build
from services.recovery.domain.calendar import CalendarSpec
from services.recovery.domain.errors import PolicyError
from services.recovery.domain.loading import load_toml_model

DEFAULT_POLICY_FILE = Path(__file__).resolve().parent.parent / "policy" / "default.toml"


class CurrencyLimits(BaseModel):
    """The money limits of one currency; each must fit the currency's minor units."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    auto_refund_limit: Amount
    micro_claim_limit: Amount
    anomaly_auto_limit: Amount
    damage_auto_limit: Amount
    goodwill_cap: Amount
    effort_voucher: Amount
    breach_fallback_limit: Amount
    # Not a decision limit: what one contact costs to handle, for the what-if report.
    handling_cost_per_contact: Amount


def _limits(*amounts: str) -> CurrencyLimits:
    names = list(CurrencyLimits.model_fields)
    return CurrencyLimits.model_validate(dict(zip(names, amounts, strict=True)))


def _default_limits() -> dict[str, CurrencyLimits]:
    usd = _limits("50.00", "2.70", "10000.00", "1500.00", "200.00", "10.00", "50.00", "11.30")
    # COP: the USD numbers times about 4,000, rounded to amounts a person would write.
    cop = _limits("200000", "10800", "40000000", "6000000", "800000", "40000", "200000", "45200")
    return {"USD": usd, "EUR": usd, "COP": cop}


def _default_approval_limits() -> dict[str, Decimal]:
    return {"USD": Decimal("500.00"), "EUR": Decimal("500.00"), "COP": Decimal(2000000)}


CalendarId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
ClockName = Literal["wall", "business"]


class Clocks(BaseModel):
    """Which clock an escalation of one priority runs on (docs/policy.md, Clocks).

    ``wall``: the customer's promise, ``sla_hours`` of real time from filing. ``business``: the
    person's deadline, ``business_hours`` (default ``sla_hours``) of the assignee's team
    calendar from filing; where the team has no calendar it is the wall clock. The warning
    comes at ``sla_warning_ratio`` of the clock's hours, the breach at its end, and the
    customer-favourable fallback at the end of its own clock.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    warning: ClockName = "wall"
    breach: ClockName = "wall"
    fallback: ClockName = "wall"
    business_hours: Decimal | None = Field(default=None, gt=0, le=24 * 366)


WALL_CLOCKS = Clocks()


class Policy(BaseModel):
    """Every parameter of the recovery policy, with the shipped defaults."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(default="default", min_length=1)
    version: str = Field(default="1", min_length=1)
    sla_hours: int = Field(default=10, ge=1)
    sla_warning_ratio: Decimal = Field(default=Decimal("0.8"), gt=0, lt=1)
    charge_wait_minutes: int = Field(default=15, ge=0)
    anomaly_multiple: Decimal = Field(default=Decimal(10), gt=1)
    goodwill_percent: Decimal = Field(default=Decimal(20), ge=0, le=100)
    voucher_valid_days: int = Field(default=365, ge=1)
    legal_guarantee_years: int = Field(default=3, ge=0)
    repeat_contact_threshold: int = Field(default=3, ge=2)
    max_auto_concessions: int = Field(default=3, ge=1)
    guardrail_window_days: int = Field(default=90, ge=1)
    refund_settlement: str = Field(default="3-5 business days", min_length=1)
    subscription_period_days: int = Field(default=30, ge=1)
    # The currency of an effort voucher on a case whose own currency has no limits (or
    # that names no money at all): the voucher is still owed, so it needs some currency.
    fallback_currency: Currency = "USD"
    limits: dict[Currency, CurrencyLimits] = Field(default_factory=_default_limits)
    approval_limits: dict[Currency, Amount] = Field(default_factory=_default_approval_limits)
    # Teams' business-hours calendars by id (docs/policy.md, Calendars); holidays are resolved
    # to dates by services/recovery/calendars.py, and the roster names each team's.
    calendars: dict[CalendarId, CalendarSpec] = Field(default_factory=dict)
    # The clocks of an escalation by priority; a priority not listed runs on the wall clock.
    clocks: dict[Priority, Clocks] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        for currency, limits in self.limits.items():
            for name, amount in limits:
                check_minor_units(amount, currency, f"{currency}.{name}")
        for currency, amount in self.approval_limits.items():
            check_minor_units(amount, currency, f"approval_limits.{currency}")
        if self.fallback_currency not in self.limits:
            raise ValueError(f"fallback_currency {self.fallback_currency} has no limits")
        return self

    @property
    def sla(self) -> timedelta:
        """The time from filing to the decision the customer is promised."""
        return _timedelta(hours=self.sla_hours)  # asked for every case

    @property
    def warning_lead(self) -> timedelta:
        """How long before the deadline the warning fires ((1 - ratio) of the SLA)."""
        return _warning_lead(self.sla_hours, self.sla_warning_ratio)  # asked for every case

    @property
    def charge_wait(self) -> timedelta:
        """How long a complaint waits for a charge it names but the service has not seen."""
        return _timedelta(minutes=self.charge_wait_minutes)

    def clocks_for(self, priority: Priority) -> Clocks:
        """The clocks an escalation of ``priority`` runs on."""
        return self.clocks.get(priority, WALL_CLOCKS)

    def business_hours(self, priority: Priority) -> Decimal:
        """The person's deadline on an escalation of ``priority``, in business hours."""
        hours = self.clocks_for(priority).business_hours
        return Decimal(self.sla_hours) if hours is None else hours

    def limits_for(self, currency: str | None) -> CurrencyLimits | None:
        """The limits of ``currency``, or None (no currency, or none configured)."""
        return None if currency is None else self.limits.get(currency)

    def ref(self, rule: str) -> PolicyRef:
        """The reference a decision by ``rule`` carries."""
        return _policy_ref(self.id, self.version, rule)


def load_policy(path: Path | None = None) -> Policy:
    """Load a policy file (None: the shipped default); raise :class:`PolicyError`."""
    return load_toml_model(path or DEFAULT_POLICY_FILE, Policy, "policy file", PolicyError)


# By value, not cached on the policy: model_copy(update=...) would carry a cached value over.
@functools.lru_cache(maxsize=64)
def _timedelta(hours: int = 0, minutes: int = 0) -> timedelta:
    return timedelta(hours=hours, minutes=minutes)


@functools.lru_cache(maxsize=256)
def _policy_ref(policy_id: str, version: str, rule: str) -> PolicyRef:
    # One frozen reference per rule, shared by the decisions that cite it.
    return build.policy_ref(id=policy_id, version=version, rule=rule)


@functools.lru_cache(maxsize=64)
def _warning_lead(sla_hours: int, ratio: Decimal) -> timedelta:
    seconds = Decimal(sla_hours * 3600) * (1 - ratio)
    return timedelta(microseconds=int(seconds * 1_000_000))
