"""The notifier's errors, one tree::

    NotifierError
    ├── TemplateSetError          a template directory is incomplete or does not parse
    └── DeliveryError             an email could not be handed to the mail server
        ├── TemporaryDeliveryError    4xx, refused connection, timeout: retry later
        └── PermanentDeliveryError    5xx: retrying will not help, fail at once

Messages never carry an email address or the email's body: they end up in logs and in
``notification.email.failed.v1`` events. A delivery error's message is scrubbed
(:func:`services.common.redact.scrub`) as it is made.
"""

from __future__ import annotations

from services.common.redact import scrub


class NotifierError(Exception):
    """Base of every error the notifier raises on purpose."""


class TemplateSetError(NotifierError):
    """A template directory lacks a template, or a template does not parse."""


class DeliveryError(NotifierError):
    """An email was not accepted by the mail server.

    ``code`` is the SMTP reply code when the server answered (``None`` when it did not);
    the message is redacted of email addresses.
    """

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(scrub(message))
        self.code = code


class TemporaryDeliveryError(DeliveryError):
    """The server is away, busy or said 4xx: the same email may go through later."""


class PermanentDeliveryError(DeliveryError):
    """The server said 5xx (or the email cannot be built): retrying will not help."""
