"""The composition roots: what they build from the settings, and the read side's boundary
(no recovery module reads the notifier's tables but through the notifier's queries)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from services.common.clock import system_clock
from services.recovery import bootstrap
from services.recovery.domain.errors import ConfigError
from services.recovery.settings import RecoverySettings

SECRET = "bootstrap-test-secret-0123456789abcdef"


def test_configure_fails_without_the_voucher_secret_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match="RECOVERY_VOUCHER_SECRET is not set"):
        bootstrap.configure(RecoverySettings(recovery_voucher_secret=None))


def test_the_recovery_service_is_built_from_the_settings() -> None:
    settings = RecoverySettings(recovery_voucher_secret=SECRET, recovery_source="recovery-eu")
    configured = bootstrap.configure(settings, system_clock)
    pool: Any = object()  # not used until a batch is handled
    service = bootstrap.recovery_service(pool, configured)
    assert service.source == "recovery-eu"
    assert service.policy is configured.policy
    assert service.roster is configured.roster
    assert service.vouchers is configured.vouchers


def test_the_runtime_is_made_without_the_secret_and_builds_its_application_at_start() -> None:
    """The AsyncAPI documents are made from apps built on default settings (no secret): a
    missing setting stops the service when it starts."""
    runtime = bootstrap.Runtime(RecoverySettings(recovery_voucher_secret=None))
    assert runtime.service is None


def test_no_recovery_module_reads_the_notifiers_tables() -> None:
    root = Path(bootstrap.__file__).parent
    sql = re.compile(r"\b(FROM|JOIN|INTO|UPDATE)\s+(notifications|deliveries)\b", re.IGNORECASE)
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py") if sql.search(p.read_text())]
    assert offenders == []
