"""The MIME message a receiving system sees, and how SMTP errors are classified (no I/O)."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage

import aiosmtplib
import pytest

from services.common.contract.events import EmailRequested, Recipient
from services.notifier.adapters.smtp import SmtpSender, build_message, convert_error
from services.notifier.domain.compose import compose
from services.notifier.domain.errors import PermanentDeliveryError, TemporaryDeliveryError
from services.notifier.domain.templates import TemplateSet
from services.notifier.settings import NotifierSettings
from tests.unit.notifier.factories import OWNER, decision, envelope

NOW = datetime(2026, 11, 22, 10, 20, tzinfo=UTC)
SENDER = "care@shop.example.com"


@pytest.fixture
def request_es(templates: TemplateSet) -> EmailRequested:
    data = decision(locale="es-CO")
    req = compose(envelope(data), data, templates)
    assert req is not None
    return req


def _parsed(msg: EmailMessage) -> EmailMessage:
    parsed = email.message_from_bytes(msg.as_bytes(), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_message_has_both_parts_and_the_owner_as_reply_to(request_es: EmailRequested) -> None:
    msg = _parsed(build_message(request_es, SENDER, NOW))
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None
    assert html is not None
    # The wire model strips the final newline; MIME puts one back.
    assert text.get_content().replace("\r\n", "\n").rstrip("\n") == request_es.text
    assert html.get_content().replace("\r\n", "\n").rstrip("\n") == request_es.html
    assert msg["Subject"] == request_es.subject
    assert msg["From"].addresses[0].display_name == OWNER.name
    assert msg["From"].addresses[0].addr_spec == SENDER
    assert msg["Reply-To"].addresses[0].addr_spec == OWNER.email
    assert msg["To"].addresses[0].addr_spec == request_es.to.email
    assert msg["X-Notification-Id"] == request_es.notification_id
    assert msg["Message-ID"] == f"<{request_es.notification_id}@shop.example.com>"
    assert msg["Content-Language"] == "es-CO"


def test_message_id_is_the_same_on_every_retry(request_es: EmailRequested) -> None:
    later = datetime(2026, 11, 22, 11, 0, tzinfo=UTC)
    assert (
        build_message(request_es, SENDER, NOW)["Message-ID"] == build_message(request_es, SENDER, later)["Message-ID"]
    )


def test_a_line_break_in_a_name_cannot_add_headers(request_es: EmailRequested) -> None:
    evil = request_es.model_copy(update={"to": Recipient(name="Bob\r\nBcc: all@example.org", email="bob@example.org")})
    with pytest.raises(PermanentDeliveryError) as info:
        build_message(evil, SENDER, NOW)
    assert "example.org" not in str(info.value)


@pytest.mark.parametrize(
    ("exc", "kind", "code"),
    [
        (aiosmtplib.SMTPDataError(554, "5.7.1 rejected"), PermanentDeliveryError, 554),
        (aiosmtplib.SMTPSenderRefused(550, "no", SENDER), PermanentDeliveryError, 550),
        (aiosmtplib.SMTPDataError(451, "4.3.0 try later"), TemporaryDeliveryError, 451),
        (aiosmtplib.SMTPAuthenticationError(535, "bad creds"), TemporaryDeliveryError, 535),
        (aiosmtplib.SMTPConnectError("refused"), TemporaryDeliveryError, None),
        (aiosmtplib.SMTPConnectTimeoutError("slow"), TemporaryDeliveryError, None),
        (aiosmtplib.SMTPServerDisconnected("gone"), TemporaryDeliveryError, None),
        (aiosmtplib.SMTPReadTimeoutError("slow"), TemporaryDeliveryError, None),
        (ConnectionRefusedError(111, "refused"), TemporaryDeliveryError, None),
        (TimeoutError(), TemporaryDeliveryError, None),
    ],
)
def test_errors_are_classified(exc: Exception, kind: type[Exception], code: int | None) -> None:
    converted = convert_error(exc)
    assert type(converted) is kind
    assert converted.code == code


def test_refused_recipient_is_permanent_and_redacted() -> None:
    refused = aiosmtplib.SMTPRecipientRefused(
        550, "5.1.1 <bob@example.org>: Recipient address rejected", "bob@example.org"
    )
    converted = convert_error(aiosmtplib.SMTPRecipientsRefused([refused]))
    assert isinstance(converted, PermanentDeliveryError)
    assert "bob@example.org" not in str(converted)
    assert "550" in str(converted)


def test_greylisted_recipient_is_temporary() -> None:
    refused = aiosmtplib.SMTPRecipientRefused(450, "4.2.0 greylisted", "bob@example.org")
    converted = convert_error(aiosmtplib.SMTPRecipientsRefused([refused]))
    assert isinstance(converted, TemporaryDeliveryError)


def test_tls_and_starttls_together_are_refused() -> None:
    with pytest.raises(ValueError, match="mutually exclusive"):
        SmtpSender(hostname="127.0.0.1", port=25, use_tls=True, start_tls=True)


def test_sender_from_settings() -> None:
    settings = NotifierSettings(smtp_host="mail.example.com", smtp_port=587, smtp_start_tls=True)
    assert isinstance(SmtpSender.from_settings(settings), SmtpSender)


def test_an_address_past_the_cut_of_a_long_refusal_is_not_kept_in_part() -> None:
    # The server's text is cut to 200 characters, here inside the address: the cut must not
    # leave the address's start, which no longer looks like one.
    text = "5.1.1 " + "x" * 188 + " <bob.smith@example.org>: Recipient address rejected"
    refused = aiosmtplib.SMTPRecipientRefused(550, text, "bob.smith@example.org")
    converted = str(convert_error(aiosmtplib.SMTPRecipientsRefused([refused])))
    assert "bob" not in converted
    assert converted.endswith("<[red")
