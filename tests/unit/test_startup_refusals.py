"""Settings a service refuses at start, with one line naming the settings (never a value):
a password that would go without TLS, and a weak token or key."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from services.common.devstack import local_ops_token, local_voucher_secret
from services.common.settings import (
    CommonSettings,
    SettingsError,
    describe_settings_error,
    load_settings,
    secret_weakness,
)
from services.notifier.settings import NotifierSettings
from services.recovery.settings import RecoverySettings

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "hunter2-but-longer"
STRONG = "Zq8-strong-token-d41d8cd98f00b204e980"
SASL_PLAINTEXT: dict[str, Any] = {
    "kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "SCRAM-SHA-512",
    "kafka_sasl_username": "svc", "kafka_sasl_password": PASSWORD,
}  # fmt: skip


def _refusal(cls: type[CommonSettings], **values: Any) -> str:
    with pytest.raises(ValidationError) as refused:
        cls(**values)
    line = describe_settings_error(refused.value)
    assert "\n" not in line
    assert line.startswith("configuration error: ")
    return line


# --------------------------------------------------------------------------- cleartext passwords


@pytest.mark.parametrize("cls", [CommonSettings, RecoverySettings, NotifierSettings])
def test_a_kafka_password_over_sasl_plaintext_is_refused(cls: type[CommonSettings]) -> None:
    line = _refusal(cls, **SASL_PLAINTEXT)
    for name in ("KAFKA_SASL_PASSWORD", "KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT", "ALLOW_CLEARTEXT_CREDENTIALS"):
        assert name in line
    assert PASSWORD not in line


def test_a_kafka_password_goes_over_tls_or_where_cleartext_is_allowed() -> None:
    assert CommonSettings(**{**SASL_PLAINTEXT, "kafka_security_protocol": "SASL_SSL"}).kafka_sasl_password
    assert CommonSettings(**SASL_PLAINTEXT, allow_cleartext_credentials=True).kafka_sasl_password
    # SASL_PLAINTEXT with no password sends none (the deployed settings without their secret).
    assert CommonSettings(**{**SASL_PLAINTEXT, "kafka_sasl_password": None}).kafka_sasl_password is None
    assert CommonSettings().allow_cleartext_credentials is False


def test_an_smtp_password_without_tls_is_refused() -> None:
    line = _refusal(NotifierSettings, smtp_username="care", smtp_password=PASSWORD)
    for name in ("SMTP_PASSWORD", "SMTP_USE_TLS", "SMTP_START_TLS", "ALLOW_CLEARTEXT_CREDENTIALS"):
        assert name in line
    assert PASSWORD not in line


@pytest.mark.parametrize(
    "extra", [{"smtp_start_tls": True}, {"smtp_use_tls": True}, {"allow_cleartext_credentials": True}]
)
def test_an_smtp_password_goes_over_tls_or_where_cleartext_is_allowed(extra: dict[str, Any]) -> None:
    assert NotifierSettings(smtp_password=PASSWORD, **extra).smtp_password is not None


def test_smtp_without_a_password_needs_no_tls() -> None:
    assert NotifierSettings(smtp_username="care").smtp_password is None


# --------------------------------------------------------------------------- strong secrets


@pytest.mark.parametrize("field", ["ops_api_token", "recovery_voucher_secret"])
@pytest.mark.parametrize(
    ("weak", "why"),
    [
        ("short-token-1", "at least 32 characters"),
        ("x" * 40, "too guessable"),
        ("password" * 4, "too guessable"),  # a piece repeated
        ("abcabcabcabcabcabcabcabcabcabcabcab", "too guessable"),
        ("01234567" * 5, "too guessable"),  # 8 different, but one piece repeated
        ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaabcdef", "too guessable"),  # 6 different characters
    ],
)
def test_a_weak_token_or_key_is_refused_without_showing_it(field: str, weak: str, why: str) -> None:
    line = _refusal(RecoverySettings, **{field: weak})
    assert f"{field.upper()}: " in line
    assert why in line
    assert weak not in line


def test_random_tokens_of_the_usual_sizes_are_strong_enough() -> None:
    for _ in range(500):
        for value in (secrets.token_urlsafe(24), secrets.token_hex(16), secrets.token_urlsafe(48)):
            assert secret_weakness(value) is None, value
    settings = RecoverySettings(ops_api_token=STRONG, recovery_voucher_secret=STRONG)
    assert settings.ops_api_token is not None
    assert settings.ops_api_token.get_secret_value() == STRONG


def test_an_unset_ops_token_is_not_refused_it_turns_the_ops_api_off() -> None:
    assert RecoverySettings().ops_api_token is None


def test_the_local_stack_makes_strong_tokens_kept_and_readable_by_its_owner_only(tmp_path: Path) -> None:
    token = local_ops_token(tmp_path)
    value = token.read_text()
    assert secret_weakness(value) is None
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert local_ops_token(tmp_path).read_text() == value  # a restart keeps a client's copy good
    assert local_voucher_secret(tmp_path).read_text() != value
    assert RecoverySettings(ops_api_token=value).ops_api_token is not None


# --------------------------------------------------------------------------- at start


def test_loading_from_the_environment_stops_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", PASSWORD)
    with pytest.raises(SettingsError) as stopped:
        load_settings(NotifierSettings)
    assert isinstance(stopped.value, SystemExit)
    message = str(stopped.value.code)
    assert message.startswith("configuration error: SMTP_PASSWORD would be sent without TLS")
    assert "\n" not in message
    assert PASSWORD not in message
    monkeypatch.setenv("SMTP_START_TLS", "true")
    assert load_settings(NotifierSettings).smtp_start_tls is True


def _start(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SMTP_", "OPS_", "RECOVERY_"))}
    return subprocess.run(
        [sys.executable, "-c", code], env={**keep, "PYTHONPATH": str(ROOT), **env},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("code", "env", "names"),
    [
        ("from services.notifier.entrypoints.delivery import main; main()",
         {"SMTP_PASSWORD": PASSWORD}, ["SMTP_PASSWORD"]),
        ("from services.notifier.entrypoints.kafka import run; run()",
         {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "PLAIN",
          "KAFKA_SASL_PASSWORD": PASSWORD}, ["KAFKA_SASL_PASSWORD", "SASL_PLAINTEXT"]),
        ("from services.recovery.entrypoints.kafka import run; run()",
         {"OPS_API_TOKEN": PASSWORD}, ["OPS_API_TOKEN: must be at least 32 characters"]),
        ("import sys; sys.argv = ['recoveryctl', 'cases', 'list']\n"
         "from services.recovery.entrypoints.cli import main; main()",
         {"OPS_API_TOKEN": PASSWORD}, ["OPS_API_TOKEN: must be at least 32 characters"]),
    ],
)  # fmt: skip
def test_the_services_and_recoveryctl_refuse_to_start_with_one_line(
    code: str, env: dict[str, str], names: list[str]
) -> None:
    done = _start(code, env)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for name in names:
        assert name in lines[0]
    assert PASSWORD not in done.stderr
