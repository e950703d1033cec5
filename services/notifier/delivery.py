"""Deliver one requested email with retries: the reference delivery worker's core.

Pure of I/O of its own: the sender, the sleep and the clock come in, so tests skip time
instead of sleeping. The caller publishes the returned ``EmailDelivered`` or
``EmailFailed``. A full schedule can take most of an hour (see
:mod:`services.notifier.domain.retry`): run one delivery per email concurrently rather
than holding a partition's other emails behind it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from services.common.contract.events import EmailDelivered, EmailFailed, EmailRequested
from services.common.redact import scrub
from services.notifier.domain.errors import PermanentDeliveryError, TemporaryDeliveryError
from services.notifier.domain.ports import EmailSender
from services.notifier.domain.retry import backoff_delays
from services.notifier.settings import NotifierSettings

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def schedule(settings: NotifierSettings, rng: random.Random | None = None) -> list[float]:
    """The waits between attempts for one email, from the delivery settings."""
    return backoff_delays(
        settings.delivery_max_attempts,
        settings.delivery_base_delay_s,
        settings.delivery_max_delay_s,
        rng or random.Random(),
    )


async def deliver(
    sender: EmailSender,
    req: EmailRequested,
    from_address: str,
    delays: Sequence[float],
    *,
    sleep: Sleep = asyncio.sleep,
    clock: Clock = _utc_now,
) -> EmailDelivered | EmailFailed:
    """Send ``req``, retrying temporary failures after each of ``delays``.

    Makes ``len(delays) + 1`` attempts at most. A permanent failure ends it at once. The
    ``error`` of an ``EmailFailed`` is the delivery error scrubbed of addresses and of this
    email's names and subject (a server may quote them): it is stored, published and shown.
    """
    waits = iter(delays)
    attempt = 0
    while True:
        attempt += 1
        try:
            await sender.send(req, from_address)
        except PermanentDeliveryError as exc:
            error = _scrubbed(f"permanent failure on attempt {attempt}: {exc}", req)
            return EmailFailed(notification_id=req.notification_id, at=clock(), error=error)
        except TemporaryDeliveryError as exc:
            wait = next(waits, None)
            if wait is None:
                error = _scrubbed(f"gave up after {attempt} attempts: {exc}", req)
                return EmailFailed(notification_id=req.notification_id, at=clock(), error=error)
            await sleep(wait)
        else:
            return EmailDelivered(notification_id=req.notification_id, at=clock())


def _scrubbed(error: str, req: EmailRequested) -> str:
    personal = (req.to.name, str(req.to.email), req.reply_to.name, str(req.reply_to.email), req.subject)
    return scrub(error, known=personal)
