"""Production TLS and SASL settings reach the Kafka clients and the PostgreSQL pool.

The CA is made here with ``cryptography`` (in the dev extra); nothing connects anywhere:
the clients are built inside a running loop and closed unstarted.
"""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.common.db import pool_kwargs
from services.recovery.settings import RecoverySettings

CA_NAME = "service-recovery test CA"


def _make_ca(path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    path = tmp_path / "ca.crt"
    _make_ca(path)
    return path


@pytest.fixture
def production_settings(ca_file: Path) -> RecoverySettings:
    return RecoverySettings(
        kafka_bootstrap_servers="kafka-0.example.internal:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="service-recovery",
        kafka_sasl_password="not-a-real-password",
        kafka_ssl_cafile=str(ca_file),
        kafka_acks="all",
        kafka_enable_idempotence=True,
    )


def _subject(cert: dict[str, Any]) -> dict[str, str]:
    """A certificate's subject as ``ssl`` decodes it: relative names of (attribute, value) pairs."""
    return dict(rdn[0] for rdn in cert["subject"])


def _trusts_only_the_test_ca(ctx: object) -> None:
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.check_hostname is True
    subjects = [_subject(c) for c in ctx.get_ca_certs()]
    assert subjects == [{"commonName": CA_NAME}]


async def test_the_producer_speaks_sasl_ssl_with_scram_and_the_ca(production_settings):
    producer = AIOKafkaProducer(**production_settings.kafka_producer_options())
    try:
        client = producer.client
        assert client._security_protocol == "SASL_SSL"
        assert client._sasl_mechanism == "SCRAM-SHA-512"
        assert client._sasl_plain_username == "service-recovery"
        assert client._sasl_plain_password == "not-a-real-password"
        _trusts_only_the_test_ca(client._ssl_context)
        # acks=all and the idempotent producer, as Apache Kafka in production wants.
        assert producer._sender._acks == -1
        assert producer._txn_manager is not None
    finally:
        await producer.stop()


async def test_the_consumer_speaks_sasl_ssl_with_scram_and_the_ca(production_settings):
    consumer = AIOKafkaConsumer(group_id="recovery-service", **production_settings.kafka_consumer_options())
    try:
        client = consumer._client
        assert client._security_protocol == "SASL_SSL"
        assert client._sasl_mechanism == "SCRAM-SHA-512"
        _trusts_only_the_test_ca(client._ssl_context)
    finally:
        await consumer.stop()


def test_plaintext_settings_build_no_tls_context():
    settings = RecoverySettings(kafka_security_protocol="PLAINTEXT")
    assert "ssl_context" not in settings.kafka_client_options()
    assert "ssl" not in pool_kwargs(RecoverySettings())


def test_the_database_pool_verifies_postgres_against_the_root_cert(ca_file):
    settings = RecoverySettings(
        database_url="postgresql://recovery:secret@postgres.example.internal:5432/recovery?sslmode=verify-full",
        database_ssl_rootcert=str(ca_file),
    )
    kwargs = pool_kwargs(settings)
    _trusts_only_the_test_ca(kwargs["ssl"])
    assert kwargs["dsn"].endswith("sslmode=verify-full")
