"""The HTTP side of every service process: liveness, readiness and Prometheus metrics, on
one small uvicorn server started in the service's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import uvicorn
from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

ReadyCheck = Callable[[], Awaitable[bool]]


def probes_app(ready: ReadyCheck, title: str, version: str) -> FastAPI:
    app = FastAPI(title=title, version=version)

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


async def serve(app: FastAPI, host: str, port: int, stop: asyncio.Event) -> None:
    """Serve ``app`` until ``stop`` is set (port 0 disables the server)."""
    if port == 0:
        await stop.wait()
        return
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await stop.wait()
    server.should_exit = True
    await task
