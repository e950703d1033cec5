"""The port email delivery goes through: anything that can hand one email to a mail server."""

from __future__ import annotations

from typing import Protocol

from services.common.contract.events import EmailRequested


class EmailSender(Protocol):
    """Sends one requested email.

    Raises :class:`~services.notifier.domain.errors.TemporaryDeliveryError` when a later
    try may succeed and :class:`~services.notifier.domain.errors.PermanentDeliveryError`
    when it will not. ``sender`` is the From address; the display name is the case owner's.
    """

    async def send(self, req: EmailRequested, sender: str) -> None: ...
