"""The recovery service's settings (and recoveryctl's): the only reader of the environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import CommonSettings, StrongSecret


class RecoverySettings(CommonSettings):
    # RECOVERY_POLICY_FILE: unset, the shipped default policy applies (docs/policy.md).
    recovery_policy_file: Path | None = None
    # The case-owner roster; unset, the shipped roster applies.
    recovery_roster_file: Path | None = None
    recovery_source: str = "recovery-service"
    recovery_group_id: str = "recovery-service"
    recovery_batch_max: int = Field(default=500, ge=1)
    # How long the subscriber waits for records when it has none; FastStream then sleeps as
    # long again before it looks, so this bounds an idle service's first-record delay (2x).
    recovery_batch_timeout_ms: int = Field(default=5, ge=1)
    # After the subscriber hands over a batch, wait up to this long for what reached the
    # broker meanwhile and take it into the same batch (0: off). See consumer.top_up.
    recovery_top_up_ms: int = Field(default=5, ge=0)
    # While a backlog lasts, decide the next batch while the last one commits (see
    # services/common/pipeline.py); false: one batch at a time.
    recovery_pipeline: bool = True
    # Durable SLA timers: how often a worker looks for due timers (also woken by NOTIFY).
    recovery_timer_poll_s: float = Field(default=0.5, gt=0)

    # Health, readiness, metrics and (recovery only) the ops API.
    http_host: str = "0.0.0.0"  # noqa: S104 - a service in a container listens on all interfaces
    http_port: int = Field(default=8080, ge=0, le=65535)
    # Bearer token for the ops API (everything but the probes). Unset: the ops API refuses all;
    # set, it must be strong (services.common.settings.secret_weakness) or the service stops.
    ops_api_token: StrongSecret | None = None
    # The secret voucher codes are derived under (HMAC-SHA256 of the case id and the
    # voucher's number in the case; see docs/ledger.md), strong like OPS_API_TOKEN. Unset, the
    # recovery service and `recoveryctl cases decide` refuse to start. A new secret changes
    # the codes of vouchers issued from then on; those issued are recorded as they were.
    recovery_voucher_secret: StrongSecret | None = None
    # A setting refused at start is named without the value given (secrets among them).
    model_config = SettingsConfigDict(hide_input_in_errors=True)
