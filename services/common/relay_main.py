"""The outbox relay as a process: ``python -m services.common.relay_main --relay NAME``.

Publishes the outbox rows queued for relay ``NAME`` (see :mod:`services.common.relay`) with
the broker and database from the environment (:class:`CommonSettings`), until SIGTERM or
SIGINT. Stopping is graceful: the batch in flight is published and deleted, then the
producer is flushed and stopped and the pool closed. A relay killed outright loses nothing:
its unacknowledged batch is still in the outbox and the next leader publishes it again.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Sequence

from services.common import tracing
from services.common.db import create_pool
from services.common.kafka import make_producer
from services.common.logging import configure_logging, get_logger, secrets_of
from services.common.relay import OutboxRelay
from services.common.settings import CommonSettings, load_settings

log = get_logger(__name__)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m services.common.relay_main",
        description="Publish one relay's outbox to Kafka until SIGTERM/SIGINT.",
    )
    parser.add_argument("--relay", required=True, help="the relay name the outbox rows carry")
    parser.add_argument("--batch-size", type=int, default=1000, help="messages per batch (default 1000)")
    parser.add_argument(
        "--poll-s",
        type=float,
        default=1.0,
        help="seconds between polls when idle or standing by (default 1.0)",
    )
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    if args.poll_s <= 0:
        parser.error("--poll-s must be positive")
    return args


async def serve(
    settings: CommonSettings,
    relay_name: str,
    *,
    batch_size: int,
    poll_s: float,
    stop: asyncio.Event,
) -> int:
    """Run the relay until ``stop`` is set; return how many messages it published."""
    pool = await create_pool(settings)
    try:
        producer = make_producer(settings)
        await producer.start()
        try:
            relay = OutboxRelay(pool, producer, relay_name, batch_size=batch_size, poll_s=poll_s,
                                max_request_size=settings.kafka_max_request_size)  # fmt: skip
            log.info("relay.started", relay=relay_name, batch_size=batch_size)
            await relay.run(stop)
            return relay.published
        finally:
            await producer.stop()  # flushes whatever is still buffered
    finally:
        await pool.close()


async def _main(args: argparse.Namespace) -> int:
    settings = load_settings(CommonSettings)
    configure_logging(settings.log_level, settings.log_format, secrets=secrets_of(settings))
    tracing.configure_tracing("outbox-relay")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    published = await serve(settings, args.relay, batch_size=args.batch_size, poll_s=args.poll_s, stop=stop)
    log.info("relay.stopped", relay=args.relay, published=published)
    tracing.shutdown()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(_main(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
