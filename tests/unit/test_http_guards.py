"""The guards in front of every service's HTTP app, over real HTTP (uvicorn on loopback):
the docs and the OpenAPI document only as HTTP_DOCS says, and a body over the limit refused
with 413 before the route parses it."""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import AsyncIterator
from typing import Any
from unittest.mock import patch

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr

from services.common.devstack import free_port
from services.common.http import HttpOptions, probes_app, serve
from services.common.settings import CommonSettings
from services.recovery.bootstrap import Runtime
from services.recovery.settings import RecoverySettings

TOKEN = "docs-token-4d1f0b9c7e2a58f3b6c0e917"
DOCS = ("/openapi.json", "/docs", "/redoc")
LIMIT = 1024


async def _ready() -> bool:
    return True


def _app(options: HttpOptions, calls: list[Any] | None = None) -> FastAPI:
    app = probes_app(_ready, "test-service", "1", options)

    @app.post("/echo")
    async def echo(body: dict[str, Any]) -> dict[str, int]:
        if calls is not None:
            calls.append(body)
        return {"keys": len(body)}

    return app


async def _served(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``app`` served by :func:`serve`, once uvicorn's startup says it listens."""
    port, stop, listening = free_port(), asyncio.Event(), asyncio.Event()
    startup = uvicorn.Server.startup

    async def started(server: uvicorn.Server, sockets: list[socket.socket] | None = None) -> None:
        await startup(server, sockets)
        listening.set()

    with patch.object(uvicorn.Server, "startup", started):
        task = asyncio.create_task(serve(app, "127.0.0.1", port, stop))
        waiter = asyncio.create_task(listening.wait())
        await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)  # started, or failed to
        waiter.cancel()
    try:
        assert listening.is_set(), "uvicorn did not start"
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            yield client
    finally:
        stop.set()
        await task


@pytest.fixture
def calls() -> list[Any]:
    return []


async def test_docs_are_off_by_default() -> None:
    assert CommonSettings().http_docs == "off"
    async for client in _served(probes_app(_ready, "test-service", "1")):
        for url in DOCS:
            assert (await client.get(url)).status_code == 404, url
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200


async def test_public_docs_are_served_to_anyone() -> None:
    async for client in _served(_app(HttpOptions(docs="public"))):
        for url in DOCS:
            assert (await client.get(url)).status_code == 200, url
        assert "/healthz" in (await client.get("/openapi.json")).json()["paths"]


async def test_docs_behind_the_token_need_it_as_bearer_or_basic_password() -> None:
    async for client in _served(_app(HttpOptions(docs="token", docs_token=SecretStr(TOKEN)))):
        basic = base64.b64encode(f"anyone:{TOKEN}".encode()).decode()
        wrong = base64.b64encode(b"anyone:wrong").decode()
        for url in DOCS:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {wrong}"},
                            {"Authorization": "Basic !!not-base64"}, {"Authorization": f"Token {TOKEN}"}):  # fmt: skip
                refused = await client.get(url, headers=headers)
                assert refused.status_code == 401, (url, headers)
                # A browser asks for the token (as a password) and sends it with the docs' requests.
                assert refused.headers["www-authenticate"].startswith("Basic")
            assert (await client.get(url, headers={"Authorization": f"Bearer {TOKEN}"})).status_code == 200
            assert (await client.get(url, headers={"Authorization": f"Basic {basic}"})).status_code == 200
        doc = (await client.get("/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"})).json()
        assert "/echo" in doc["paths"]
        assert "/openapi.json" not in doc["paths"]


async def test_docs_behind_a_token_that_is_not_set_are_off() -> None:
    async for client in _served(_app(HttpOptions(docs="token"))):
        for url in DOCS:
            assert (await client.get(url, headers={"Authorization": "Bearer x"})).status_code == 404


def test_the_recovery_service_guards_its_docs_with_the_ops_api_token() -> None:
    settings = RecoverySettings(http_docs="token", ops_api_token=TOKEN, http_max_body_bytes=2048)
    options = Runtime(settings).http_options()
    assert options.docs == "token"
    assert options.docs_token is not None
    assert options.docs_token.get_secret_value() == TOKEN
    assert options.max_body_bytes == 2048


async def test_a_body_over_the_limit_is_refused_before_the_route_sees_it(calls: list[Any]) -> None:
    async for client in _served(_app(HttpOptions(max_body_bytes=LIMIT), calls)):
        at_limit = b'{"a":"' + b"x" * (LIMIT - 8) + b'"}'
        assert len(at_limit) == LIMIT
        ok = await client.post("/echo", content=at_limit, headers={"Content-Type": "application/json"})
        assert ok.status_code == 200, ok.text
        assert len(calls) == 1

        over = b'{"a":"' + b"x" * (LIMIT - 7) + b'"}'
        refused = await client.post("/echo", content=over, headers={"Content-Type": "application/json"})
        assert refused.status_code == 413
        assert refused.json() == {"detail": f"request body too large: at most {LIMIT} bytes"}
        # Not JSON at all: still 413, not a parse error, since nothing was parsed.
        json_type = {"Content-Type": "application/json"}
        garbage = await client.post("/echo", content=b"\xff" * (LIMIT + 1), headers=json_type)
        assert garbage.status_code == 413
        assert len(calls) == 1


async def test_a_chunked_body_is_cut_off_once_it_passes_the_limit(calls: list[Any]) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"a":"'
        for _ in range(8):
            yield b"x" * 256
        yield b'"}'

    async for client in _served(_app(HttpOptions(max_body_bytes=LIMIT), calls)):
        r = await client.post("/echo", content=chunks(), headers={"Content-Type": "application/json"})
        assert "content-length" not in r.request.headers  # sent chunked: the server counts
        assert r.status_code == 413
        assert r.json()["detail"] == f"request body too large: at most {LIMIT} bytes"
        assert calls == []
        # The probes answer as before.
        assert (await client.get("/healthz")).status_code == 200


def test_the_limit_is_a_setting_with_a_64_kib_default() -> None:
    assert CommonSettings().http_max_body_bytes == 64 * 1024
    assert HttpOptions.of(CommonSettings(http_max_body_bytes=10)).max_body_bytes == 10
