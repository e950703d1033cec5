"""What must hold on Apache Kafka for the topics `recoveryctl topics create` makes from the
deployed settings (the bundled broker takes any size and keeps the configs unchecked)."""

from __future__ import annotations

import pytest

from services.common.kafka import DeadLetterLimits, topic_configs
from services.recovery.settings import RecoverySettings
from tests.unit.deploy.manifests import K8S, app_services, compose_env, env_file


def _deployed() -> dict[str, RecoverySettings]:
    init = compose_env(app_services()["init"])
    k8s = {k.lower(): v for k, v in env_file(K8S / "settings.env").items()}
    # Without TLS: the CA files live in the cluster, and sizes do not depend on them.
    k8s.update(kafka_security_protocol="SASL_PLAINTEXT")
    return {
        "compose": RecoverySettings(**{k.lower(): v for k, v in init.items()}),  # type: ignore[arg-type]
        "kubernetes": RecoverySettings(**k8s),  # type: ignore[arg-type]
    }


@pytest.mark.parametrize("where", ["compose", "kubernetes"])
def test_every_topic_takes_what_producers_send_and_consumers_fetch(where: str) -> None:
    settings = _deployed()[where]
    producer_max = settings.kafka_producer_options()["max_request_size"]
    for name in settings.all_topics():
        assert int(topic_configs(settings, name)["max.message.bytes"]) == producer_max, name
    # A consumer fetches a partition up to this much: a record as large as the topic allows.
    assert settings.kafka_consumer_options()["max_partition_fetch_bytes"] >= producer_max
    # A dead letter, whatever it kept, is a message the producer accepts.
    assert DeadLetterLimits.of(settings).max_event_bytes < producer_max


@pytest.mark.parametrize("where", ["compose", "kubernetes"])
def test_the_dead_letter_topic_keeps_its_messages_for_weeks(where: str) -> None:
    settings = _deployed()[where]
    retention_ms = int(topic_configs(settings, settings.topic_dlq)["retention.ms"])
    assert retention_ms == -1 or retention_ms >= 14 * 24 * 3_600_000
