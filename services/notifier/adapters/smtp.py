"""Sending requested emails over SMTP with aiosmtplib.

One email per connection: the reference delivery worker sends a few an hour, so a pool
would add state for nothing. aiosmtplib's errors are converted here into the notifier's
tree (:mod:`services.notifier.domain.errors`); nothing in this module logs, so no address
or body can reach a log from here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

import aiosmtplib

from services.common.contract.events import EmailRequested
from services.common.redact import scrub
from services.notifier.domain.errors import (
    DeliveryError,
    PermanentDeliveryError,
    TemporaryDeliveryError,
)
from services.notifier.domain.retry import is_permanent_reply
from services.notifier.settings import NotifierSettings

_MAX_SERVER_TEXT = 200


def _address(name: str, email: str) -> Address:
    local, _, domain = email.rpartition("@")
    return Address(display_name=name, username=local, domain=domain)


def message_id(req: EmailRequested, sender: str) -> str:
    """``<notification_id@sender's domain>``: the same for every retry and redelivery."""
    domain = sender.rpartition("@")[2] or "notifier.invalid"
    return f"<{req.notification_id}@{domain}>"


# Header lines up to RFC 5322's hard limit of 998 characters: the standard library's folding at
# 78 puts a subject holding a colon whole on a continuation line ("Subject:" CRLF SP text),
# which readers then show with a leading space. Bodies in 7-bit transfer encodings, so no
# server's lack of 8BITMIME matters.
_POLICY = policy.SMTP.clone(max_line_length=998, cte_type="7bit")


def build_message(req: EmailRequested, sender: str, now: datetime) -> EmailMessage:
    """The MIME message for ``req``: multipart/alternative with the text and the HTML.

    From is ``sender`` under the case owner's name, Reply-To the owner, To the customer.
    Raises :class:`PermanentDeliveryError` if a header cannot be written (a CR or LF in a
    name): no retry would change that.
    """
    msg = EmailMessage(policy=_POLICY)
    try:
        msg["From"] = _address(req.reply_to.name, sender)
        msg["Reply-To"] = _address(req.reply_to.name, str(req.reply_to.email))
        msg["To"] = _address(req.to.name, str(req.to.email))
        msg["Subject"] = req.subject
    except ValueError as exc:
        raise PermanentDeliveryError(f"the email cannot be built: {exc}") from None
    msg["Date"] = format_datetime(now.astimezone(UTC))
    msg["Message-ID"] = message_id(req, sender)
    msg["X-Notification-Id"] = req.notification_id
    msg.set_content(req.text, subtype="plain", charset="utf-8")
    msg.add_alternative(req.html, subtype="html", charset="utf-8")
    # After the body: setting content drops every Content-* header already there.
    msg["Content-Language"] = req.locale
    return msg


def _server_text(message: str) -> str:
    # Scrubbed before it is cut: a cut address would no longer look like one.
    return scrub(" ".join(message.split()))[:_MAX_SERVER_TEXT]


def convert_error(exc: Exception) -> DeliveryError:
    """The notifier error for an aiosmtplib (or socket) error: 5xx permanent, else temporary.

    One exception to "5xx is permanent": an authentication failure is our configuration,
    not this email, so it is temporary and the email goes once the credentials are fixed.
    """
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        texts = "; ".join(_server_text(r.message) for r in exc.recipients)
        permanent = bool(codes) and all(is_permanent_reply(c) for c in codes)
        cls = PermanentDeliveryError if permanent else TemporaryDeliveryError
        return cls(f"recipient refused: {codes} {texts}", code=codes[0] if codes else None)
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return TemporaryDeliveryError(f"SMTP authentication failed ({exc.code})", code=exc.code)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        cls = PermanentDeliveryError if is_permanent_reply(exc.code) else TemporaryDeliveryError
        name = type(exc).__name__
        return cls(f"{name} {exc.code}: {_server_text(exc.message)}", code=exc.code)
    return TemporaryDeliveryError(f"{type(exc).__name__}: {_server_text(str(exc))}")


class SmtpSender:
    """An :class:`~services.notifier.domain.ports.EmailSender` over SMTP.

    ``use_tls`` connects over TLS (port 465 style); ``start_tls`` upgrades a plain
    connection with STARTTLS (port 587 style) and fails if the server cannot. Both off
    sends in clear: for a local sink only (the settings refuse a password then, unless
    ``ALLOW_CLEARTEXT_CREDENTIALS``).
    """

    def __init__(
        self,
        *,
        hostname: str,
        port: int,
        username: str | None = None,
        password: str | None = None,
        use_tls: bool = False,
        start_tls: bool = False,
        timeout_s: float = 30.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if use_tls and start_tls:
            raise ValueError("use_tls and start_tls are mutually exclusive")
        self._hostname = hostname
        self._port = port
        self._username = username
        self._password = password
        self._use_tls = use_tls
        self._start_tls = start_tls
        self._timeout_s = timeout_s
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: NotifierSettings) -> SmtpSender:
        """The sender the settings describe (``SMTP_HOST``, ``SMTP_PORT``, TLS, credentials)."""
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        return cls(
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=password,
            use_tls=settings.smtp_use_tls,
            start_tls=settings.smtp_start_tls,
            timeout_s=settings.smtp_timeout_s,
        )

    async def send(self, req: EmailRequested, sender: str) -> None:
        """Send ``req`` from ``sender``; raise a :class:`DeliveryError` if it is not accepted."""
        # Flattened here: aiosmtplib would flatten a message object with its own policy.
        message = build_message(req, sender, self._clock()).as_bytes(policy=_POLICY)
        try:
            await aiosmtplib.send(
                message,
                sender=sender,
                recipients=[str(req.to.email)],
                hostname=self._hostname,
                port=self._port,
                username=self._username,
                password=self._password,
                use_tls=self._use_tls,
                start_tls=self._start_tls,
                timeout=self._timeout_s,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            # "from None": the driver's message may quote the address; ours is redacted.
            raise convert_error(exc) from None
