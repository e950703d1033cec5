"""deploy/docker-compose.yml: the full system on Apache Kafka and PostgreSQL, wired right."""

from __future__ import annotations

from typing import Any

import pytest

from services.notifier.settings import NotifierSettings
from services.recovery.settings import RecoverySettings
from tests.unit.deploy.manifests import (
    app_services,
    compose,
    compose_env,
    console_scripts,
    default_port,
    programs_in,
    settings_env_names,
)

SERVICES = ("recovery-service", "notifier-service", "delivery-worker")


def test_compose_brings_up_the_whole_system():
    services = compose()["services"]
    assert {"kafka", "postgres", "mailpit", "init", *SERVICES} <= set(services)
    assert set(app_services()) == {"init", *SERVICES}


def test_kafka_is_apache_kafka_in_kraft_mode_with_a_healthcheck():
    kafka = compose()["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = compose_env(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "ZOOKEEPER" not in " ".join(env)
    # Topics come from `recoveryctl topics create`, with the configured partition count.
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "kafka-broker-api-versions" in " ".join(kafka["healthcheck"]["test"])


def test_postgres_and_the_mail_catcher_have_healthchecks():
    services = compose()["services"]
    assert services["postgres"]["image"].startswith("postgres:")
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["mailpit"]["image"].startswith("axllent/mailpit")
    assert services["mailpit"]["healthcheck"]["test"]
    assert any(p.endswith(":8025") for p in services["mailpit"]["ports"])


def test_init_migrates_and_creates_topics_once_infrastructure_is_healthy():
    init = compose()["services"]["init"]
    command = " ".join(init["command"])
    assert "recoveryctl migrate" in command
    assert "recoveryctl topics create" in command
    assert command.index("migrate") < command.index("topics create")
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert init["depends_on"]["postgres"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", SERVICES)
def test_services_start_after_init_completed(name):
    depends = compose()["services"][name]["depends_on"]
    assert depends["init"]["condition"] == "service_completed_successfully"


def test_every_command_is_a_console_script():
    for name, svc in app_services().items():
        for program in programs_in(svc["command"]):
            assert program in console_scripts(), f"{name} runs {program!r}"


def test_every_environment_variable_is_a_settings_field():
    known = settings_env_names()
    for name, svc in app_services().items():
        unknown = set(compose_env(svc)) - known
        assert not unknown, f"{name} sets {sorted(unknown)}, which no settings class reads"


def test_every_service_is_told_where_kafka_and_postgres_are():
    for name, svc in app_services().items():
        env = compose_env(svc)
        assert env.get("KAFKA_BOOTSTRAP_SERVERS", "").startswith("kafka:"), name
        assert env.get("DATABASE_URL", "").startswith("postgresql://"), name
        assert "@postgres:" in env["DATABASE_URL"], name


def test_the_services_log_in_as_the_restricted_role_and_only_init_as_the_owner():
    for name, svc in app_services().items():
        env = compose_env(svc)
        assert env["DATABASE_URL"].startswith("postgresql://recovery_app:"), name
        assert ("DATABASE_MIGRATION_URL" in env) == (name == "init"), name
    assert "recoveryctl migrate --grant-login" in " ".join(compose()["services"]["init"]["command"])


def test_the_environment_parses_into_the_settings_with_production_producer_options():
    for name, svc in app_services().items():
        values: dict[str, Any] = {k.lower(): v for k, v in compose_env(svc).items()}
        notifier = name in ("notifier-service", "delivery-worker")
        settings = (NotifierSettings if notifier else RecoverySettings)(**values)
        # Apache Kafka: idempotent producer, acks from all in-sync replicas.
        assert settings.kafka_enable_idempotence is True, name
        assert settings.kafka_producer_options()["acks"] == "all", name


def test_recovery_runs_two_replicas_in_one_consumer_group():
    recovery = compose()["services"]["recovery-service"]
    assert recovery["deploy"]["replicas"] >= 2
    assert "container_name" not in recovery  # would forbid a second replica
    # Two replicas cannot share one host port: a range or none at all.
    for port in recovery.get("ports", []):
        host = str(port).rsplit(":", 1)[0]
        assert "-" in host, f"{port} publishes one host port for {recovery['deploy']['replicas']}"


def test_the_partitions_leave_work_for_every_recovery_replica():
    env = compose_env(compose()["services"]["init"])
    replicas = compose()["services"]["recovery-service"]["deploy"]["replicas"]
    assert int(env["TOPIC_PARTITIONS"]) >= replicas


@pytest.mark.parametrize(
    ("name", "variable"),
    [
        ("recovery-service", "HTTP_PORT"),
        ("notifier-service", "HTTP_PORT"),
        ("delivery-worker", "DELIVERY_HTTP_PORT"),
    ],
)
def test_published_ports_are_the_settings_defaults(name, variable):
    svc = compose()["services"][name]
    port = default_port(name)
    assert int(compose_env(svc).get(variable, port)) == port
    assert all(str(p).endswith(f":{port}") for p in svc["ports"])


def test_the_ops_api_has_a_token_and_the_delivery_worker_the_mail_catcher():
    recovery = compose_env(compose()["services"]["recovery-service"])
    assert recovery["OPS_API_TOKEN"]
    assert len(recovery["RECOVERY_VOUCHER_SECRET"]) >= 32  # the service does not start without one
    delivery = compose_env(compose()["services"]["delivery-worker"])
    assert delivery["SMTP_HOST"] == "mailpit"
    assert delivery["SMTP_PORT"] == "1025"


def test_services_get_time_to_shut_down_gracefully():
    for name, svc in app_services().items():
        assert svc.get("init") is True, name
        seconds = int(str(svc["stop_grace_period"]).removesuffix("s"))
        assert seconds >= 20, name
