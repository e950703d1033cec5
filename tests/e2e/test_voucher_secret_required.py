"""The recovery service does not start without its voucher secret, and says which setting
is missing (never a value)."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import ServiceProcess


def test_the_recovery_service_refuses_to_start_without_a_voucher_secret(
    settings_env: dict[str, str], tmp_path: Path
) -> None:
    env = {k: v for k, v in settings_env.items() if k != "RECOVERY_VOUCHER_SECRET"}
    svc = ServiceProcess("recovery-service", env, tmp_path / "svc.log").start()
    assert svc.proc is not None
    try:
        code = svc.proc.wait(60)
    finally:
        svc.kill()
    assert code != 0
    assert "RECOVERY_VOUCHER_SECRET is not set" in svc.log()
