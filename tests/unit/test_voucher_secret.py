"""RECOVERY_VOUCHER_SECRET: required to decide, long enough, never echoed; the local stack's."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from services.common.clock import ManualClock
from services.common.devstack import local_voucher_secret
from services.recovery.application import RecoveryService
from services.recovery.domain import ConfigError, load_policy, load_roster
from services.recovery.settings import RecoverySettings
from tests.unit.recovery.builders import T0


def _service(settings: Any) -> RecoveryService:
    return RecoveryService(None, settings, load_policy(), load_roster(), ManualClock(T0))


def test_the_service_refuses_to_start_without_a_voucher_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECOVERY_VOUCHER_SECRET", raising=False)
    with pytest.raises(ConfigError, match="RECOVERY_VOUCHER_SECRET is not set"):
        _service(RecoverySettings())


def test_a_short_voucher_secret_is_refused_without_showing_it() -> None:
    with pytest.raises(ValidationError) as refused:
        RecoverySettings(recovery_voucher_secret="tiny-but-secret")
    assert "recovery_voucher_secret" in str(refused.value)
    assert "tiny-but-secret" not in str(refused.value)


def test_the_service_derives_its_codes_from_the_secret() -> None:
    one = _service(RecoverySettings(recovery_voucher_secret="one-voucher-secret-0123456789abcdef"))
    other = _service(RecoverySettings(recovery_voucher_secret="another-voucher-secret-0123456789ab"))
    assert one.vouchers("case-1", 0) != other.vouchers("case-1", 0)


def test_the_local_secret_is_made_once_kept_and_readable_by_its_owner_only(tmp_path: Path) -> None:
    first = local_voucher_secret(tmp_path / "local")
    secret = first.read_text()
    assert local_voucher_secret(tmp_path / "local").read_text() == secret  # a restart keeps the codes
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    assert local_voucher_secret(tmp_path / "other").read_text() != secret
    assert RecoverySettings(recovery_voucher_secret=secret).recovery_voucher_secret is not None
