"""The HTTP side of every service process: liveness, readiness and Prometheus metrics, on
one small uvicorn server started in the service's own event loop.

Two guards stand in front of every route: a request body larger than
``HTTP_MAX_BODY_BYTES`` is refused with 413 before it is parsed, and the interactive docs
and the OpenAPI document are served only as ``HTTP_DOCS`` says (off unless asked for).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Request, Response, status
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.settings import CommonSettings

ReadyCheck = Callable[[], Awaitable[bool]]
DocsAccess = Literal["off", "token", "public"]

_TOO_LARGE = 413
OPENAPI_URL = "/openapi.json"
DOCS_URL = "/docs"
REDOC_URL = "/redoc"


@dataclass(frozen=True)
class HttpOptions:
    """What a service's HTTP app exposes and accepts (``HTTP_DOCS``, ``HTTP_MAX_BODY_BYTES``).

    ``docs_token`` guards the docs when ``docs`` is ``token``: without one they are off.
    """

    docs: DocsAccess = "off"
    docs_token: SecretStr | None = None
    max_body_bytes: int = 64 * 1024

    @classmethod
    def of(cls, settings: CommonSettings, docs_token: SecretStr | None = None) -> HttpOptions:
        return cls(settings.http_docs, docs_token, settings.http_max_body_bytes)


def probes_app(ready: ReadyCheck, title: str, version: str, options: HttpOptions | None = None) -> FastAPI:
    options = options or HttpOptions()
    public = options.docs == "public"
    app = FastAPI(title=title, version=version, openapi_url=OPENAPI_URL if public else None,
                  docs_url=DOCS_URL if public else None, redoc_url=REDOC_URL if public else None)  # fmt: skip
    token = options.docs_token.get_secret_value() if options.docs_token is not None else ""
    if options.docs == "token" and token:
        _guarded_docs(app, title, token.encode())
    app.add_middleware(BodyLimit, max_bytes=options.max_body_bytes)

    @app.get("/healthz", tags=["probes"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process is up and its event loop answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["probes"])
    async def readyz(response: Response) -> dict[str, str]:
        """Readiness: the database answers and the consumer is running."""
        ok = False
        with contextlib.suppress(Exception):
            ok = await asyncio.wait_for(ready(), 2)
        if not ok:
            response.status_code = 503
        return {"status": "ready" if ok else "not ready"}

    @app.get("/metrics", tags=["probes"])
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


def _given_token(authorization: str) -> bytes:
    """The token in ``Authorization: Bearer <token>`` or in the password of HTTP Basic
    (any user name), which a browser asks for and then sends with the docs' own requests."""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip().encode()
    if scheme.lower() == "basic":
        with contextlib.suppress(binascii.Error, ValueError):
            return base64.b64decode(value.strip(), validate=True).partition(b":")[2]
    return b""


def _guarded_docs(app: FastAPI, title: str, expected: bytes) -> None:
    """/openapi.json, /docs and /redoc, each behind ``expected``."""

    async def authorized(request: Request) -> None:
        given = _given_token(request.headers.get("authorization", ""))
        if not (given and hmac.compare_digest(given, expected)):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "the docs need the bearer token",
                                headers={"WWW-Authenticate": 'Basic realm="api docs"'})  # fmt: skip

    guard = [Depends(authorized)]

    @app.get(OPENAPI_URL, include_in_schema=False, dependencies=guard)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get(DOCS_URL, include_in_schema=False, dependencies=guard)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=OPENAPI_URL, title=f"{title} - docs")

    @app.get(REDOC_URL, include_in_schema=False, dependencies=guard)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url=OPENAPI_URL, title=f"{title} - ReDoc")


class BodyTooLarge(HTTPException):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(_TOO_LARGE, f"request body too large: at most {max_bytes} bytes")


class BodyLimit:
    """Refuses a request body over ``max_bytes`` with 413: at once when its Content-Length
    says so, else as soon as what arrives passes the limit (a chunked body), before the
    route has parsed anything."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0
        started = False

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # An HTTPException: the route's body reading lets it through, and the
                    # app's own handler answers it.
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, watched)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail: dict[str, Any] = {"detail": BodyTooLarge(self.max_bytes).detail}
        # Connection: close, so the server need not read the rest of the body.
        await JSONResponse(detail, _TOO_LARGE, headers={"Connection": "close"})(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            with contextlib.suppress(ValueError):
                return int(value)
    return None


async def serve(app: FastAPI, host: str, port: int, stop: asyncio.Event) -> None:
    """Serve ``app`` until ``stop`` is set (port 0 disables the server)."""
    if port == 0:
        await stop.wait()
        return
    # No log configuration of uvicorn's own: its lines go through the root logger, as JSON.
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off", log_config=None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await stop.wait()
    server.should_exit = True
    await task
