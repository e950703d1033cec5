"""Delivering with retries: time is skipped, never slept."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from services.common.contract.events import EmailDelivered, EmailFailed, EmailRequested
from services.notifier.delivery import deliver, schedule
from services.notifier.domain.compose import compose
from services.notifier.domain.errors import (
    DeliveryError,
    PermanentDeliveryError,
    TemporaryDeliveryError,
)
from services.notifier.domain.ports import EmailSender
from services.notifier.domain.templates import TemplateSet
from services.notifier.settings import NotifierSettings
from tests.unit.notifier.factories import decision, envelope

NOW = datetime(2026, 11, 22, 10, 20, tzinfo=UTC)


class ScriptedSender(EmailSender):
    """Fails with the scripted errors, in order, then accepts."""

    def __init__(self, *failures: DeliveryError) -> None:
        self.failures = list(failures)
        self.attempts = 0
        self.sent: list[EmailRequested] = []

    async def send(self, req: EmailRequested, sender: str) -> None:
        self.attempts += 1
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(req)


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def req(templates: TemplateSet) -> EmailRequested:
    data = decision()
    composed = compose(envelope(data), data, templates)
    assert composed is not None
    return composed


async def test_temporary_failures_are_retried_until_it_goes(req: EmailRequested) -> None:
    sender = ScriptedSender(TemporaryDeliveryError("451"), TemporaryDeliveryError("timeout"))
    sleeps = Sleeps()
    outcome = await deliver(sender, req, "care@x.example", [5, 10, 20], sleep=sleeps, clock=lambda: NOW)
    assert outcome == EmailDelivered(notification_id=req.notification_id, at=NOW)
    assert sender.attempts == 3
    assert sleeps.waits == [5, 10]


async def test_permanent_failure_fails_at_once(req: EmailRequested) -> None:
    sender = ScriptedSender(PermanentDeliveryError("550 no such user bob@example.org", 550))
    sleeps = Sleeps()
    outcome = await deliver(sender, req, "care@x.example", [5, 10], sleep=sleeps, clock=lambda: NOW)
    assert isinstance(outcome, EmailFailed)
    assert sender.attempts == 1
    assert sleeps.waits == []
    assert "550" in outcome.error
    assert "bob@example.org" not in outcome.error


async def test_gives_up_after_the_last_attempt(req: EmailRequested) -> None:
    sender = ScriptedSender(*[TemporaryDeliveryError("421 busy")] * 10)
    sleeps = Sleeps()
    delays = schedule(NotifierSettings(), random.Random(3))
    outcome = await deliver(sender, req, "care@x.example", delays, sleep=sleeps, clock=lambda: NOW)
    assert isinstance(outcome, EmailFailed)
    assert sender.attempts == 10
    assert sleeps.waits == delays
    assert sum(sleeps.waits) > 30 * 60
    assert "after 10 attempts" in outcome.error


async def test_a_failure_quoting_the_recipients_name_or_the_subject_is_stored_without_them(
    req: EmailRequested,
) -> None:
    quoted = f"550 5.7.1 message '{req.subject}' for {req.to.name} <{req.to.email}> from {req.reply_to.name}"
    outcome = await deliver(ScriptedSender(PermanentDeliveryError(quoted)), req, "care@x.example", [],
                            sleep=Sleeps(), clock=lambda: NOW)  # fmt: skip
    assert isinstance(outcome, EmailFailed)
    for personal in (req.subject, req.to.name, str(req.to.email), req.reply_to.name):
        assert personal not in outcome.error
    assert outcome.error.startswith("permanent failure on attempt 1: 550 5.7.1 message '[redacted]' for [redacted]")


async def test_the_attempts_are_counted_with_the_last_reply_code(req: EmailRequested) -> None:
    from prometheus_client import REGISTRY

    from services.notifier import metrics
    from services.notifier.worker import CountingSender

    def value(name: str) -> float:
        return REGISTRY.get_sample_value(name) or 0.0

    before = {n: value(n) for n in ("delivery_emails_deferred_total", "delivery_retry_attempts_total")}
    sender = CountingSender(ScriptedSender(TemporaryDeliveryError("451", code=451), PermanentDeliveryError("550", 550)))
    outcome = await deliver(sender, req, "care@x.example", [5, 10], sleep=Sleeps(), clock=lambda: NOW)
    assert isinstance(outcome, EmailFailed)
    assert (sender.attempts, sender.last_code) == (2, 550)
    assert value("delivery_emails_deferred_total") - before["delivery_emails_deferred_total"] == 1
    assert value("delivery_retry_attempts_total") - before["delivery_retry_attempts_total"] == 1
    assert [metrics.code_class(c) for c in (451, 550, None, 250)] == ["4xx", "5xx", "none", "none"]
