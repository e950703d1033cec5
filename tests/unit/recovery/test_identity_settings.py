"""The identity settings refuse what would weaken sign-in: a partial OIDC configuration,
keys over plain http off the machine, and any algorithm but RS256, ES256 and EdDSA; the
built-in issuer's tokens carry 256 random bits."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.recovery.identity import TOKEN_PREFIX, Identity, new_token
from services.recovery.settings import RecoverySettings

OIDC = {"oidc_issuer": "https://id.example.test", "oidc_audience": "desk"}


@pytest.mark.parametrize(
    "given",
    [
        {"oidc_issuer": "https://id.example.test"},
        {**OIDC, "oidc_jwks_url": "http://id.example.test/certs"},
        {**OIDC, "oidc_jwks_url": "https://id.example.test/certs", "oidc_algorithms": "RS256,HS256"},
        {**OIDC, "oidc_jwks_url": "https://id.example.test/certs", "oidc_algorithms": "none"},
    ],
)
def test_weak_or_partial_identity_settings_are_refused(given: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        RecoverySettings(**given)  # type: ignore[arg-type]


def test_a_local_http_jwks_is_allowed_and_algorithms_are_normalised() -> None:
    s = RecoverySettings(**OIDC, oidc_jwks_url="http://127.0.0.1:8000/certs", oidc_algorithms=" ES256 , EdDSA ")  # type: ignore[arg-type]
    assert s.oidc_algorithms == "ES256,EdDSA"


def test_local_tokens_carry_256_random_bits() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100
    for t in tokens:
        assert t.startswith(TOKEN_PREFIX)
        assert len(t.removeprefix(TOKEN_PREFIX)) == 43  # 32 bytes, base64url


def test_the_service_credential_reads_and_never_decides() -> None:
    service = Identity(None, "service", "service")
    assert service.can("read")
    assert not service.can("decide")
    assert Identity("ana", "supervisor", "local").decides_as == "supervisor"
    assert Identity("bo", "agent", "oidc").decides_as == "agent"
