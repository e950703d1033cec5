"""Settings shared by every process, read from the environment (and nothing else reads it).

Each service has one settings class that extends :class:`CommonSettings`; field names are
the environment variable names (case-insensitive).
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from services.common.kafka import DeadLetterLimits

SECRET_MIN_LENGTH = 32
SECRET_MIN_DISTINCT = 8
# Named in every refusal to send a password in clear.
CLEARTEXT_ESCAPE = "or set ALLOW_CLEARTEXT_CREDENTIALS=true (local use only)"


def secret_weakness(value: str) -> str | None:
    """Why ``value`` is too weak for a locally issued token or key, or None.

    At least 32 characters, at least 8 different ones, and not a shorter piece repeated:
    a rough floor that refuses the guessable ("x" * 32, "password" four times) without
    measuring entropy. Every value of ``secrets.token_urlsafe(24)`` or ``token_hex(16)``
    passes. The message never quotes the value.
    """
    if len(value) < SECRET_MIN_LENGTH:
        return f"must be at least {SECRET_MIN_LENGTH} characters (a random one: `openssl rand -base64 32`)"
    if len(set(value)) < SECRET_MIN_DISTINCT or value in (value + value)[1:-1]:
        return "is too guessable: a repeated pattern or too few different characters (use a random one)"
    return None


def _strong(secret: SecretStr) -> SecretStr:
    weakness = secret_weakness(secret.get_secret_value())
    if weakness is not None:
        raise ValueError(weakness)
    return secret


# A token or key this system checks itself (a bearer token, an HMAC key): refused at start
# when :func:`secret_weakness` finds it weak.
StrongSecret = Annotated[SecretStr, AfterValidator(_strong)]

S = TypeVar("S", bound=BaseSettings)


class SettingsError(SystemExit):
    """A setting refused at start: exits the process with one line naming the settings at
    fault (never their values)."""


def describe_settings_error(exc: ValidationError) -> str:
    """One line for a refused set of settings: ``NAME: why; ...`` (no input value)."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False):
        why = str(err["msg"]).removeprefix("Value error, ")
        names = [str(part).upper() for part in err["loc"] if isinstance(part, str)]
        parts.append(f"{names[0]}: {why}" if names else why)
    return "configuration error: " + "; ".join(parts)


def load_settings(cls: type[S]) -> S:
    """``cls`` read from the environment; a refused setting raises :class:`SettingsError`,
    which stops the process with a one-line message rather than a traceback."""
    try:
        return cls()
    except ValidationError as exc:
        raise SettingsError(describe_settings_error(exc)) from None


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # --- where things are (docs/contract.md: unset, the local commands start the bundled servers)
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    database_url: SecretStr = SecretStr("postgresql://postgres@127.0.0.1:5432/recovery")
    # The owner of the schema, for `recoveryctl migrate` and `replay rebuild` (DDL); unset,
    # they use DATABASE_URL. The services never need it: give it to the init job only.
    database_migration_url: SecretStr | None = None

    # --- topic names (docs/contract.md defaults; each can be overridden)
    topic_charges: str = "billing.charges"
    topic_complaints: str = "customer.complaints"
    topic_decisions: str = "recovery.decisions"
    topic_notifications: str = "notifications.email"
    topic_dlq: str = "recovery.dlq"
    topic_partitions: int = Field(default=3, ge=1)
    topic_replication_factor: int = Field(default=1, ge=1)

    # --- Kafka client (production: TLS + SASL, acks=all, idempotence on Apache Kafka)
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None
    kafka_acks: Literal["all", "1"] = "all"
    # Off by default because the bundled broker lacks InitProducerId; turn on for Apache Kafka.
    kafka_enable_idempotence: bool = False
    kafka_linger_ms: int = Field(default=5, ge=0)
    kafka_max_request_size: int = Field(default=4 * 1024 * 1024, ge=1024)
    # The bundled broker holds a first group join for half the session timeout.
    kafka_session_timeout_ms: int = Field(default=10_000, ge=1000)
    kafka_heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    # How long a fetch may wait for data. Apache Kafka answers as soon as there is any; the
    # bundled broker waits the whole time, which then adds up to this much to every batch's
    # latency (500 ms, the client's default, gave seconds of delay at 500 complaints/s).
    kafka_fetch_max_wait_ms: int = Field(default=20, ge=1)

    # --- the outbox relay (woken by NOTIFY; polls as a fallback)
    relay_batch_size: int = Field(default=1000, ge=1)
    relay_poll_s: float = Field(default=1.0, gt=0)

    # --- the inbox (ids of the messages handled, so that a redelivery is skipped)
    # Entries older than this are pruned (0: kept forever). 168 hours is Kafka's default
    # topic retention. A message read again after its entry is gone is still handled once:
    # decided again to the same events, which the store and the read models already hold.
    inbox_retention_hours: int = Field(default=168, ge=0)

    # --- PostgreSQL
    database_ssl_rootcert: str | None = None
    database_pool_min: int = Field(default=1, ge=0)
    database_pool_max: int = Field(default=8, ge=1)
    # Plan each statement for its own parameters. PostgreSQL's default ("auto") settles on a
    # generic plan after five runs of a prepared statement; planned while a table is young
    # (a new deployment taking its first backlog, before autovacuum has analysed it), that
    # plan scans the whole table and is kept until the next ANALYZE. Measured on the bundled
    # server: 2.2 ms of PostgreSQL CPU per complaint in small batches, against 0.4 ms.
    # "auto" sends nothing (for a pooler that refuses the startup parameter).
    database_plan_cache_mode: Literal["force_custom_plan", "auto"] = "force_custom_plan"

    # --- HTTP (probes, /metrics and, for recovery, the ops API)
    # The interactive docs (/docs, /redoc) and /openapi.json: "off"; "token", behind the ops
    # API's bearer token (also as the password of HTTP Basic, for a browser; a service without
    # a token serves none); "public", for anyone (the local stack).
    http_docs: Literal["off", "token", "public"] = "off"
    # A request body larger than this is refused with 413 before it is read further.
    http_max_body_bytes: int = Field(default=64 * 1024, ge=0)

    # --- credentials in clear
    # True lets a password go over a connection without TLS (SASL_PLAINTEXT with a
    # password, SMTP_PASSWORD without SMTP_USE_TLS or SMTP_START_TLS): for a local broker
    # or mail sink only. False, such settings are refused at start.
    allow_cleartext_credentials: bool = False

    # --- logging
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"

    def topic(self, logical: str) -> str:
        """The topic name for a logical topic (``charges``, ``decisions``, ...)."""
        name: str = getattr(self, f"topic_{logical}")
        return name

    def all_topics(self) -> list[str]:
        return [self.topic(t) for t in ("charges", "complaints", "decisions", "notifications", "dlq")]

    def kafka_ssl_context(self) -> ssl.SSLContext | None:
        if self.kafka_security_protocol not in ("SSL", "SASL_SSL"):
            return None
        ctx = ssl.create_default_context(cafile=self.kafka_ssl_cafile)
        if self.kafka_ssl_certfile:
            ctx.load_cert_chain(self.kafka_ssl_certfile, self.kafka_ssl_keyfile)
        return ctx

    def kafka_client_options(self) -> dict[str, Any]:
        """Connection and security options for any aiokafka client."""
        opts: dict[str, Any] = {
            "bootstrap_servers": self.kafka_bootstrap_servers,
            "security_protocol": self.kafka_security_protocol,
        }
        ctx = self.kafka_ssl_context()
        if ctx is not None:
            opts["ssl_context"] = ctx
        if self.kafka_sasl_mechanism:
            opts["sasl_mechanism"] = self.kafka_sasl_mechanism
            opts["sasl_plain_username"] = self.kafka_sasl_username
            opts["sasl_plain_password"] = (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
            )
        return opts

    def kafka_producer_options(self) -> dict[str, Any]:
        return {
            **self.kafka_client_options(),
            "acks": "all" if self.kafka_acks == "all" else 1,
            "enable_idempotence": self.kafka_enable_idempotence,
            "linger_ms": self.kafka_linger_ms,
            "max_request_size": self.kafka_max_request_size,
            "max_batch_size": 1024 * 1024,
        }

    def kafka_consumer_options(self) -> dict[str, Any]:
        return {
            **self.kafka_client_options(),
            "session_timeout_ms": self.kafka_session_timeout_ms,
            "heartbeat_interval_ms": self.kafka_heartbeat_interval_ms,
            "max_partition_fetch_bytes": self.kafka_max_request_size,
            "fetch_max_wait_ms": self.kafka_fetch_max_wait_ms,
        }

    def database_dsn(self) -> str:
        return self.database_url.get_secret_value()

    def database_migration_dsn(self) -> str:
        """The owner's DSN (``DATABASE_MIGRATION_URL``), or the services' when it is unset."""
        url = self.database_migration_url or self.database_url
        return url.get_secret_value()

    def database_ssl(self) -> ssl.SSLContext | None:
        """A TLS context when a root certificate is configured (``sslmode`` in the URL works too)."""
        if not self.database_ssl_rootcert:
            return None
        return ssl.create_default_context(cafile=self.database_ssl_rootcert)

    # --- dead letters and topic settings (`recoveryctl topics create` applies the latter)
    # A dead letter keeps this much of the original value; the rest is only counted and
    # hashed (`value_bytes`, `value_sha256`, `truncated`), so a dead letter of a message
    # near the consumer's limit still fits under KAFKA_MAX_REQUEST_SIZE.
    dead_letter_max_value_bytes: int = Field(default=64 * 1024, ge=0)
    # How long the dead-letter topic keeps what it holds (its retention.ms); 0 keeps it
    # forever. Every topic is also created with max.message.bytes = KAFKA_MAX_REQUEST_SIZE.
    dlq_retention_hours: int = Field(default=30 * 24, ge=0)

    # --- poison isolation and retries (services/common/isolate.py, failures.py)
    # A message that makes handling fail even alone is tried this many times in all, then
    # dead-lettered as "unprocessable" and the rest of its batch handled.
    poison_attempts: int = Field(default=3, ge=1)
    # After a transient failure (a lost database, a deadlock, ...) the batch is handled again
    # after a delay doubled from RETRY_BASE_S per failure in a row up to RETRY_MAX_S, less a
    # random part of up to half; a poison message's tries are spaced the same way.
    retry_base_s: float = Field(default=0.5, gt=0)
    retry_max_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _no_kafka_password_in_clear(self) -> CommonSettings:
        password = self.kafka_sasl_password
        if (self.kafka_security_protocol == "SASL_PLAINTEXT" and password is not None
                and password.get_secret_value() and not self.allow_cleartext_credentials):  # fmt: skip
            raise ValueError("KAFKA_SASL_PASSWORD would be sent without TLS (KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT):"
                             f" use SASL_SSL, {CLEARTEXT_ESCAPE}")  # fmt: skip
        return self

    @model_validator(mode="after")
    def _room_for_a_dead_letter(self) -> CommonSettings:
        # The smallest dead letter (nothing of the value kept, a short reason) with room to spare.
        if self.kafka_max_request_size < 16 * 1024:
            raise ValueError("kafka_max_request_size must be at least 16384 bytes: a dead letter must always fit")
        return self

    def quarantine_options(self) -> dict[str, Any]:
        """The settings of :class:`services.common.isolate.Quarantine`."""
        return {"attempts": self.poison_attempts, "retry_base_s": self.retry_base_s, "retry_max_s": self.retry_max_s,
                "limits": self.dead_letter_limits()}  # fmt: skip

    def dead_letter_limits(self) -> DeadLetterLimits:
        """How large this service's dead letters may grow (see :func:`services.common.kafka.dead_letter`)."""
        from services.common.kafka import DeadLetterLimits  # kafka imports this module

        return DeadLetterLimits.of(self)
