"""The policy file: its defaults, and errors that name the file and the field."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from services.recovery.domain import Policy, PolicyError, load_policy
from services.recovery.domain.policy import DEFAULT_POLICY_FILE

SHIPPED = DEFAULT_POLICY_FILE.read_text(encoding="utf-8")


def _write(tmp_path: Path, text: str, name: str = "x.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _edited(tmp_path: Path, old: str, new: str) -> Path:
    """The shipped policy with the first ``old`` replaced, as ``x.toml``."""
    assert old in SHIPPED
    return _write(tmp_path, SHIPPED.replace(old, new, 1))


def test_the_shipped_policy_is_the_documented_default() -> None:
    assert load_policy() == Policy()


def test_the_defaults_are_the_numbers_of_policy_md() -> None:
    policy = load_policy()
    assert (policy.sla_hours, policy.sla_warning_ratio) == (10, Decimal("0.8"))
    assert (policy.charge_wait_minutes, policy.anomaly_multiple) == (15, Decimal(10))
    assert (policy.goodwill_percent, policy.voucher_valid_days) == (Decimal(20), 365)
    assert (policy.legal_guarantee_years, policy.repeat_contact_threshold) == (3, 3)
    assert (policy.max_auto_concessions, policy.guardrail_window_days) == (3, 90)
    assert policy.refund_settlement == "3-5 business days"
    assert policy.subscription_period_days == 30
    usd = policy.limits["USD"]
    assert usd.auto_refund_limit == Decimal("50.00")
    assert usd.micro_claim_limit == Decimal("2.70")
    assert usd.anomaly_auto_limit == Decimal("10000.00")
    assert usd.damage_auto_limit == Decimal("1500.00")
    assert usd.goodwill_cap == Decimal("200.00")
    assert usd.effort_voucher == Decimal("10.00")
    assert usd.breach_fallback_limit == Decimal("50.00")
    assert usd.handling_cost_per_contact == Decimal("11.30")
    assert policy.limits["EUR"] == usd
    assert policy.limits["COP"].auto_refund_limit == Decimal(200000)


def test_the_sla_warning_fires_two_hours_before_a_ten_hour_deadline() -> None:
    assert load_policy().warning_lead == timedelta(hours=2)


def test_a_policy_file_can_change_a_number(tmp_path: Path) -> None:
    path = _edited(tmp_path, "sla_hours = 10", "sla_hours = 24")
    assert load_policy(path).sla_hours == 24


def test_a_limit_of_zero_names_the_file_and_the_field(tmp_path: Path) -> None:
    path = _edited(tmp_path, 'auto_refund_limit = "50.00"', "auto_refund_limit = 0")
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert str(caught.value) == (f"policy file {path}: limits.USD.auto_refund_limit: Input should be greater than 0")


def test_a_limit_with_too_many_decimals_is_refused(tmp_path: Path) -> None:
    path = _edited(tmp_path, 'goodwill_cap = "200.00"', 'goodwill_cap = "200.001"')
    with pytest.raises(PolicyError, match=r"USD\.goodwill_cap 200\.001 has 3 decimals"):
        load_policy(path)


def test_money_written_as_a_float_is_refused(tmp_path: Path) -> None:
    path = _edited(tmp_path, 'effort_voucher = "10.00"', "effort_voucher = 10.0")
    with pytest.raises(PolicyError, match=r"limits\.USD\.effort_voucher: .*never a float"):
        load_policy(path)


def test_an_unknown_field_is_a_typo_not_a_silent_default(tmp_path: Path) -> None:
    path = _edited(tmp_path, "sla_hours = 10", "sla_hour = 10")
    with pytest.raises(PolicyError, match=r"sla_hour: Extra inputs are not permitted"):
        load_policy(path)


def test_a_warning_ratio_of_one_is_refused(tmp_path: Path) -> None:
    path = _edited(tmp_path, "sla_warning_ratio = 0.8", "sla_warning_ratio = 1")
    with pytest.raises(PolicyError, match=r"x\.toml: sla_warning_ratio: Input should be less than"):
        load_policy(path)


def test_a_fallback_currency_needs_limits(tmp_path: Path) -> None:
    path = _edited(tmp_path, 'fallback_currency = "USD"', 'fallback_currency = "JPY"')
    with pytest.raises(PolicyError, match="fallback_currency JPY has no limits"):
        load_policy(path)


def test_a_file_that_is_not_toml_says_so(tmp_path: Path) -> None:
    path = _write(tmp_path, "sla_hours = = 3")
    with pytest.raises(PolicyError, match=r"x\.toml: not valid TOML"):
        load_policy(path)


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"nope\.toml: cannot be read"):
        load_policy(tmp_path / "nope.toml")


def test_every_error_in_a_file_is_reported_at_once(tmp_path: Path) -> None:
    text = SHIPPED.replace("sla_hours = 10", "sla_hours = 0").replace(
        "voucher_valid_days = 365", "voucher_valid_days = -1"
    )
    with pytest.raises(PolicyError) as caught:
        load_policy(_write(tmp_path, text))
    assert "sla_hours:" in str(caught.value)
    assert "voucher_valid_days:" in str(caught.value)


def test_a_decision_names_the_policy_id_version_and_rule() -> None:
    ref = Policy(id="eu", version="7").ref("micro-claim")
    assert (ref.id, ref.version, ref.rule) == ("eu", "7", "micro-claim")
