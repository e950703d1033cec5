"""The services' database login: the SCRAM verifier `recoveryctl migrate --grant-login` stores,
checked against the exchange in RFC 7677, and the user and password read from a URL."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from services.common.db import dsn_login
from services.common.migrate import scram_verifier

# RFC 7677, section 3: user "user", password "pencil".
CLIENT_FIRST_BARE = "n=user,r=rOprNGfwEbeRWgbNEkqO"
SERVER_FIRST = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
CLIENT_FINAL_BARE = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
PROOF = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
SERVER_SIGNATURE = "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_the_verifier_accepts_the_rfc_client_and_signs_as_the_rfc_server() -> None:
    verifier = scram_verifier("pencil", salt=base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="))
    head, keys = verifier.split("$", 1)[1].split("$")
    stored_key, server_key = (base64.b64decode(k) for k in keys.split(":"))
    assert verifier.startswith("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$")
    assert head == "4096:W22ZaJ0SNY7soEsUEjb6gQ=="
    auth = f"{CLIENT_FIRST_BARE},{SERVER_FIRST},{CLIENT_FINAL_BARE}".encode()
    # The server's check of the client's proof: H(proof XOR HMAC(StoredKey, auth)) == StoredKey.
    signature = hmac.digest(stored_key, auth, "sha256")
    client_key = bytes(a ^ b for a, b in zip(base64.b64decode(PROOF), signature, strict=True))
    assert hashlib.sha256(client_key).digest() == stored_key
    assert base64.b64encode(hmac.digest(server_key, auth, "sha256")).decode() == SERVER_SIGNATURE


def test_each_verifier_has_its_own_salt() -> None:
    assert scram_verifier("same") != scram_verifier("same")


@pytest.mark.parametrize(
    ("dsn", "login"),
    [
        ("postgresql://recovery_app:s%40cret@db:5432/recovery?sslmode=verify-full", ("recovery_app", "s@cret")),
        ("postgresql://recovery_app@/recovery?host=/tmp/pg", ("recovery_app", None)),
        ("postgresql://db/recovery?user=svc&password=pw", ("svc", "pw")),
    ],
)
def test_the_login_is_read_from_the_url(dsn: str, login: tuple[str, str | None]) -> None:
    assert dsn_login(dsn) == login


def test_a_url_without_a_user_is_refused() -> None:
    with pytest.raises(ValueError, match="no user"):
        dsn_login("postgresql://db:5432/recovery")
