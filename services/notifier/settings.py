"""The notifier's and the delivery worker's settings: the only reader of the environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator

from services.common.settings import CLEARTEXT_ESCAPE, CommonSettings


class NotifierSettings(CommonSettings):
    notifier_source: str = "notifier-service"
    notifier_group_id: str = "notifier-service"
    notifier_batch_max: int = Field(default=500, ge=1)
    # Operators can point this at a copy of the shipped templates to edit the wording.
    notifier_templates_dir: Path | None = None

    http_host: str = "0.0.0.0"  # noqa: S104 - a service in a container listens on all interfaces
    http_port: int = Field(default=8081, ge=0, le=65535)

    # --- the reference delivery worker (`delivery-worker`)
    delivery_group_id: str = "email-delivery"
    delivery_source: str = "email-delivery"
    delivery_http_port: int = Field(default=8082, ge=0, le=65535)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=1025, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_use_tls: bool = False
    smtp_start_tls: bool = False
    smtp_timeout_s: float = Field(default=30.0, gt=0)
    smtp_from: str = "care@example.com"
    # Retries with exponential backoff and equal jitter; the defaults span 36 to 51 minutes.
    delivery_max_attempts: int = Field(default=10, ge=1)
    delivery_base_delay_s: float = Field(default=5.0, gt=0)
    delivery_max_delay_s: float = Field(default=900.0, gt=0)
    # How long a claim on an email outlives its worker: a worker extends the claims it holds
    # every third of this, and a claim not extended for this long is taken over by another
    # worker (one killed mid-send is resumed about this much later).
    delivery_claim_lease_s: float = Field(default=60.0, gt=0)
    # SMTP attempts one worker makes at once; the other emails it holds wait for a turn (their
    # claims kept alive), so a backlog does not open thousands of connections to the server.
    delivery_max_connections: int = Field(default=16, ge=1)

    # The delivery worker deletes an email's delivery row this many days after its outcome
    # (delivered or failed for good): see services/notifier/retention.py. 0 keeps them.
    notification_retention_days: int = Field(default=30, ge=0)

    @model_validator(mode="after")
    def _no_smtp_password_in_clear(self) -> NotifierSettings:
        password = self.smtp_password
        tls = self.smtp_use_tls or self.smtp_start_tls
        if password is not None and password.get_secret_value() and not tls and not self.allow_cleartext_credentials:
            raise ValueError("SMTP_PASSWORD would be sent without TLS (SMTP_USE_TLS and SMTP_START_TLS are false):"
                             f" set one, {CLEARTEXT_ESCAPE}")  # fmt: skip
        return self
