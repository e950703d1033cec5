"""The FastStream lifecycle hooks that open and close a service's runtime around its
subscribers."""

from __future__ import annotations

from faststream import FastStream

from services.common.runtime import ServiceRuntime


def attach(app: FastStream, runtime: ServiceRuntime) -> FastStream:
    """Open the runtime before the subscribers start; close it after they stopped (FastStream
    waits up to its graceful timeout for the batch in hand)."""

    @app.on_startup
    async def _start() -> None:
        await runtime.start()

    @app.after_startup
    async def _consuming() -> None:
        runtime.consuming = True

    @app.after_shutdown
    async def _stop() -> None:
        await runtime.close()

    runtime.subscribers = [s for b in app.brokers for s in b.subscribers]
    app.runtime = runtime  # type: ignore[attr-defined]
    return app
