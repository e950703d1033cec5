"""The recovery service's settings (and recoveryctl's): the only reader of the environment."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from services.common.settings import CommonSettings, StrongSecret
from services.recovery.identity import ALLOWED_ALGORITHMS

_LOOPBACK = ("127.0.0.1", "::1", "localhost")


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
    # Tests only: the service's clock reads the time from this file (services/common/clock.py).
    recovery_test_clock_file: Path | None = None

    # Health, readiness, metrics and (recovery only) the ops API.
    http_host: str = "0.0.0.0"  # noqa: S104 - a service in a container listens on all interfaces
    http_port: int = Field(default=8080, ge=0, le=65535)
    # A service credential for read-only automation on the ops API (it never decides: a
    # decision needs a person). Unset: no such credential; set, it must be strong
    # (services.common.settings.secret_weakness) or the service stops.
    ops_api_token: StrongSecret | None = None
    # Sign-in to the ops API with the tokens of the built-in issuer (`recoveryctl agents`,
    # people in PostgreSQL). docs/security.md.
    identity_local: bool = True
    # An identity provider's JWTs (OIDC): all three of issuer, audience and JWKS URL, or none.
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    # https, or http on a loopback address (a local test issuer).
    oidc_jwks_url: str | None = None
    # The claim holding the person's roles (a list, or names separated by spaces); a dotted
    # path reaches into an object (realm_access.roles).
    oidc_roles_claim: str = Field(default="roles", min_length=1)
    # Clock skew allowed on exp / nbf / iat.
    oidc_leeway_s: int = Field(default=30, ge=0, le=300)
    # Comma-separated; only RS256, ES256 and EdDSA may be named.
    oidc_algorithms: str = "RS256,ES256,EdDSA"
    # The secret voucher codes are derived under (HMAC-SHA256 of the case id and the
    # voucher's number in the case; see docs/ledger.md), strong like OPS_API_TOKEN. Unset, the
    # recovery service and `recoveryctl cases decide` refuse to start. A new secret changes
    # the codes of vouchers issued from then on; those issued are recorded as they were.
    recovery_voucher_secret: StrongSecret | None = None

    @field_validator("oidc_algorithms")
    @classmethod
    def _algorithms(cls, value: str) -> str:
        names = [a.strip() for a in value.split(",") if a.strip()]
        if not names or any(a not in ALLOWED_ALGORITHMS for a in names):
            raise ValueError(f"OIDC_ALGORITHMS: a comma-separated choice of {', '.join(ALLOWED_ALGORITHMS)}")
        return ",".join(names)

    @model_validator(mode="after")
    def _oidc(self) -> RecoverySettings:
        given = [self.oidc_issuer, self.oidc_audience, self.oidc_jwks_url]
        if any(given) and not all(given):
            raise ValueError("OIDC_ISSUER, OIDC_AUDIENCE and OIDC_JWKS_URL go together")
        url = urlsplit(self.oidc_jwks_url or "")
        if self.oidc_jwks_url and not (url.scheme == "https" or (url.scheme == "http" and url.hostname in _LOOPBACK)):
            raise ValueError("OIDC_JWKS_URL must be https (http only on a loopback address)")
        return self

    # A setting refused at start is named without the value given (secrets among them).
    model_config = SettingsConfigDict(hide_input_in_errors=True)
