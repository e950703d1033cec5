"""The SMTP sender against a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import email
from collections.abc import Callable, Iterator
from email import policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from services.common.contract.events import EmailDelivered, EmailFailed, EmailRequested
from services.common.devstack import free_port
from services.notifier.adapters.smtp import SmtpSender
from services.notifier.delivery import deliver
from services.notifier.domain.compose import compose
from services.notifier.domain.errors import PermanentDeliveryError, TemporaryDeliveryError
from services.notifier.domain.templates import load_templates
from services.notifier.settings import NotifierSettings
from tests.helpers import SmtpSink as Sink
from tests.unit.notifier.factories import OWNER, REMEDIES, decision, envelope

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
SENDER = "care@shop.example.com"


class RefuseRecipients(Sink):
    """Answers RCPT with ``reply`` the first ``times`` times, then accepts."""

    def __init__(self, reply: str, times: int = 1_000_000) -> None:
        super().__init__()
        self.reply = reply
        self.times = times

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        if self.times > 0:
            self.times -= 1
            return self.reply
        envelope.rcpt_tos.append(address)
        return "250 OK"


StartServer = Callable[[Sink], int]


@pytest.fixture
def smtp_server() -> Iterator[StartServer]:
    """Starts a server with a given handler on a free loopback port; stops it after."""
    controllers: list[Controller] = []

    def start(handler: Sink) -> int:
        port = free_port()
        controller = Controller(handler, hostname=HOST, port=port)
        controller.start()
        controllers.append(controller)
        return port

    yield start
    for controller in controllers:
        controller.stop()


def _sender(port: int) -> SmtpSender:
    settings = NotifierSettings(smtp_host=HOST, smtp_port=port, smtp_timeout_s=5)
    return SmtpSender.from_settings(settings)


def _request(locale: str = "es-CO") -> EmailRequested:
    data = decision(locale=locale, remedies=[REMEDIES["refund"], REMEDIES["voucher"]])
    req = compose(envelope(data), data, load_templates())
    assert req is not None
    return req


async def test_an_accepted_email_arrives_whole(smtp_server: StartServer) -> None:
    sink = Sink()
    port = smtp_server(sink)
    req = _request()

    await _sender(port).send(req, SENDER)

    assert len(sink.received) == 1
    mail_from, rcpt_tos, content = sink.received[0]
    assert mail_from == SENDER
    assert rcpt_tos == [req.to.email]
    msg = email.message_from_bytes(content, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    assert msg["Subject"] == req.subject
    assert msg.get_content_type() == "multipart/alternative"
    text, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert text is not None
    assert html is not None
    assert "US$4,99" in text.get_content()
    assert "SORRY-4F7K" in html.get_content()
    assert msg["Reply-To"].addresses[0].addr_spec == OWNER.email
    assert msg["From"].addresses[0].display_name == OWNER.name
    assert msg["Message-ID"] == f"<{req.notification_id}@shop.example.com>"
    assert msg["X-Notification-Id"] == req.notification_id


async def test_451_is_temporary(smtp_server: StartServer) -> None:
    port = smtp_server(RefuseRecipients("451 4.3.0 Try again later"))
    with pytest.raises(TemporaryDeliveryError) as info:
        await _sender(port).send(_request(), SENDER)
    assert info.value.code == 451


async def test_550_is_permanent(smtp_server: StartServer) -> None:
    port = smtp_server(RefuseRecipients("550 5.1.1 <luis@example.org>: no such user"))
    req = _request()
    with pytest.raises(PermanentDeliveryError) as info:
        await _sender(port).send(req, SENDER)
    assert info.value.code == 550
    assert req.to.email not in str(info.value)


async def test_nothing_listening_is_temporary() -> None:
    with pytest.raises(TemporaryDeliveryError):
        await _sender(free_port()).send(_request(), SENDER)


async def test_greylisting_is_outlasted_by_the_retries(smtp_server: StartServer) -> None:
    handler = RefuseRecipients("451 4.7.1 Greylisted, come back later", times=2)
    port = smtp_server(handler)
    req = _request("en-US")

    outcome = await deliver(_sender(port), req, SENDER, [0.01, 0.01, 0.01])

    assert isinstance(outcome, EmailDelivered)
    assert len(handler.received) == 1


async def test_a_permanent_refusal_becomes_a_failed_event(smtp_server: StartServer) -> None:
    port = smtp_server(RefuseRecipients("550 5.1.1 mailbox unavailable"))
    req = _request("en-US")

    outcome = await deliver(_sender(port), req, SENDER, [0.01, 0.01])

    assert isinstance(outcome, EmailFailed)
    assert outcome.notification_id == req.notification_id
    assert "550" in outcome.error
