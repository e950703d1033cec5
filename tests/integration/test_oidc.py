"""Identity provider JWTs on the ops API, on real PostgreSQL: tokens signed with a test RSA
key, the issuer's JWKS served over HTTP by a local server, verified by PyJWT (nothing mocked).
A valid token is its subject; an expired one, one for another audience or issuer, one signed
by another key, with ``none`` or with HMAC over the public key gets 401."""

from __future__ import annotations

import base64
import hmac
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from hashlib import sha256
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI

from services.common.http import probes_app
from services.recovery.application import RecoveryService
from services.recovery.bootstrap import authenticator
from services.recovery.entrypoints.ops_api import ops_router
from services.recovery.identity import People
from services.recovery.settings import RecoverySettings
from tests.integration.test_ops_api import service  # noqa: F401 - the escalated case, as a fixture

ISSUER = "https://id.example.test/realms/desk"
AUDIENCE = "service-recovery"


class Issuer:
    """A test identity provider: RSA keys by kid, and the JWKS of those it publishes."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.published: list[str] = []
        self.fetches = 0

    def new_key(self, kid: str, *, publish: bool = True) -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if publish:
            self.published.append(kid)

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid in self.published:
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.keys[kid].public_key()))
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": keys}

    def token(self, sub: str = "p-ana", roles: Any = ("agent",), *, kid: str = "k1", **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 300, "roles": roles, **claims}
        return jwt.encode({k: v for k, v in body.items() if v is not None}, self.keys[kid], algorithm="RS256",
                          headers={"kid": kid})  # fmt: skip


@pytest.fixture
def issuer() -> Iterator[tuple[Issuer, str]]:
    idp = Issuer()
    idp.new_key("k1")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            idp.fetches += 1
            body = json.dumps(idp.jwks()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield idp, f"http://127.0.0.1:{server.server_address[1]}/certs"
    server.shutdown()
    server.server_close()


@dataclass
class Desk:
    client: httpx.AsyncClient
    idp: Issuer
    case_id: str

    async def get(self, token: str) -> httpx.Response:
        return await self.client.get("/api/v1/escalations", headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
async def desk(
    pool: asyncpg.Pool,
    service: RecoveryService,  # noqa: F811
    issuer: tuple[Issuer, str],
) -> AsyncIterator[Desk]:
    idp, url = issuer
    settings = RecoverySettings(oidc_issuer=ISSUER, oidc_audience=AUDIENCE, oidc_jwks_url=url, oidc_leeway_s=0)
    signin = authenticator(settings, lambda: pool)
    assert signin.oidc is not None
    signin.oidc.jwks.min_refresh_s = 0  # a rotation is seen at once in the test

    async def ready() -> bool:
        return True

    app: FastAPI = probes_app(ready, "recovery-service", "test")
    app.include_router(ops_router(lambda: pool, lambda: service, signin))
    case_id = await pool.fetchval("SELECT case_id FROM rm_cases WHERE status = 'escalated'")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ops") as client:
        yield Desk(client, idp, case_id)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def test_a_valid_token_is_its_subject_whatever_agent_id_says(desk: Desk) -> None:
    assert (await desk.get(desk.idp.token())).status_code == 200
    body = {"agent_id": "the-boss", "decline_reason": {"code": "agent_declined", "text": "Not covered."}}
    r = await desk.client.post(f"/api/v1/cases/{desk.case_id}/decision", json=body,
                               headers={"Authorization": f"Bearer {desk.idp.token('p-ana')}"})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["decided_by"] == "agent:p-ana"


async def test_invalid_expired_and_foreign_tokens_get_401(desk: Desk) -> None:
    idp = desk.idp
    now = int(time.time())
    idp.new_key("stranger", publish=False)
    forged_kid = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "p-x", "exp": now + 300, "roles": ["agent"]},
                            idp.keys["stranger"], algorithm="RS256", headers={"kid": "k1"})  # fmt: skip
    pem = (
        idp.keys["k1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = _b64(json.dumps({"alg": "HS256", "kid": "k1", "typ": "JWT"}).encode())
    claims = _b64(
        json.dumps({"iss": ISSUER, "aud": AUDIENCE, "sub": "p-x", "exp": now + 300, "roles": ["agent"]}).encode()
    )
    hs_with_public_key = f"{header}.{claims}." + _b64(hmac.new(pem, f"{header}.{claims}".encode(), sha256).digest())
    none_header = _b64(json.dumps({"alg": "none", "kid": "k1"}).encode())
    bad = {
        "expired": idp.token(exp=now - 5, iat=now - 600),
        "wrong audience": idp.token(aud="another-service"),
        "wrong issuer": idp.token(iss="https://evil.example.test"),
        "no expiry": idp.token(exp=None),
        "signed by another key": forged_kid,
        "alg none": f"{none_header}.{claims}.",
        "HMAC over the public key": hs_with_public_key,
        "tampered": idp.token()[:-4] + "AAAA",
    }
    for what, token in bad.items():
        r = await desk.get(token)
        assert r.status_code == 401, (what, r.text)


async def test_roles_come_from_the_claim(desk: Desk) -> None:
    url = f"/api/v1/cases/{desk.case_id}/decision"
    body = {"decline_reason": {"code": "agent_declined", "text": "Not covered."}}
    auditor = {"Authorization": f"Bearer {desk.idp.token('p-aud', ['auditor'])}"}
    assert (await desk.client.get("/api/v1/cases", headers=auditor)).status_code == 200
    assert (await desk.client.post(url, json=body, headers=auditor)).status_code == 403
    assert (await desk.get(desk.idp.token("p-none", ["viewer"]))).status_code == 403
    assert (await desk.get(desk.idp.token("p-space", "auditor other"))).status_code == 200


async def test_a_disabled_person_gets_401_and_a_rotated_key_is_fetched_on_its_first_token(
    desk: Desk, pool: asyncpg.Pool
) -> None:
    await People(pool).add("p-gone", "agent")
    assert (await desk.get(desk.idp.token("p-gone"))).status_code == 200
    await People(pool).disable("p-gone")
    assert (await desk.get(desk.idp.token("p-gone"))).status_code == 401
    fetched = desk.idp.fetches
    desk.idp.new_key("k2")  # the issuer rotates its key
    assert (await desk.get(desk.idp.token(kid="k2"))).status_code == 200
    assert desk.idp.fetches == fetched + 1
    assert (await desk.get(desk.idp.token(kid="k2"))).status_code == 200
    assert desk.idp.fetches == fetched + 1  # cached
