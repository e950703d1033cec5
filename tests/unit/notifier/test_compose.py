"""What the customer sees in every apology, in every shipped language."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from babel import Locale
from babel.dates import format_date
from babel.numbers import format_currency

from services.common.contract.events import CalendarRef, CaseEscalated, EmailRequested
from services.notifier.domain.compose import compose
from services.notifier.domain.ids import notification_id
from services.notifier.domain.templates import TemplateSet, load_templates
from services.recovery.domain.reference import case_reference
from tests.unit.notifier.factories import (
    OWNER,
    REMEDIES,
    VOUCHER_EXPIRES,
    decision,
    envelope,
    escalation,
)

LOCALES = ["es-CO", "es-ES", "en-US"]

WORDS = {
    "es": {
        "apology": "Lamento mucho",
        "thanks": "le agradezco que nos lo haya contado",
        "late": "nuestra respuesta ha tardado más de lo que le prometimos",
        "settlement": "en un plazo de 3 a 5 días hábiles",
        "charge_waiver": "Su factura corregida ya no lo incluye",
        "replacement": "producto nuevo para sustituir el suyo",
        "repair": "Repararemos su producto",
        "cancellation": "Su cancelación está confirmada",
        "declined": "esta vez no podemos concederle lo que nos pidió",
        "utc": "(hora UTC)",
    },
    "en": {
        "apology": "I am sorry",
        "thanks": "thank you for telling us",
        "late": "our answer took longer than we promised",
        "settlement": "within 3 to 5 business days",
        "charge_waiver": "Your corrected bill no longer includes it",
        "replacement": "new product to replace yours",
        "repair": "We will repair your product",
        "cancellation": "Your cancellation is confirmed",
        "declined": "this time we cannot grant what you asked for",
        "utc": "(UTC)",
    },
}


def _language(locale: str) -> str:
    return "es" if locale.startswith("es") else "en"


def _money(amount: str, locale: str) -> str:
    return format_currency(Decimal(amount), "USD", locale=Locale.parse(locale, sep="-"))


def _render(templates: TemplateSet, remedy: str, locale: str) -> EmailRequested:
    data = decision(locale=locale, remedies=[REMEDIES[remedy]])
    req = compose(envelope(data), data, templates)
    assert req is not None
    return req


def assert_fit_to_send(req: EmailRequested) -> None:
    """What every apology must have, and must not have, whatever its template."""
    words = WORDS[_language(req.locale)]
    for part in (req.text, req.html):
        assert words["apology"] in part
        assert words["thanks"] in part
        assert OWNER.name in part
        assert OWNER.email in part
        assert case_reference(req.case_id) in part, "the case named as people can type it"
        assert req.case_id not in part, "not by its id, which nobody can read out"
        for leftover in ("{{", "}}", "{%", "%}", "{#"):
            assert leftover not in part
    for part in (req.subject, req.text, req.html):
        assert "?" not in part, "the apology asks the customer nothing"
        assert "¿" not in part, "the apology asks the customer nothing"
    assert req.text.rstrip().endswith(OWNER.email), "signed by the case owner"
    assert req.reply_to.email == OWNER.email
    assert "\n" not in req.subject
    assert case_reference(req.case_id) in req.subject


@pytest.mark.parametrize("locale", LOCALES)
def test_refund_says_how_much_and_when_it_shows(templates: TemplateSet, locale: str) -> None:
    req = _render(templates, "refund", locale)
    assert_fit_to_send(req)
    for part in (req.text, req.html):
        assert _money("4.99", locale) in part
        assert WORDS[_language(locale)]["settlement"] in part
    assert req.template == "decision_resolved"


@pytest.mark.parametrize(("locale", "literal"), [("en-US", "$4.99"), ("es-CO", "US$4,99"), ("es-ES", "4,99\xa0US$")])
def test_money_is_written_the_customers_way(templates: TemplateSet, locale: str, literal: str) -> None:
    req = _render(templates, "refund", locale)
    assert literal in req.text
    assert literal in req.html


@pytest.mark.parametrize("locale", LOCALES)
def test_charge_waiver_names_the_corrected_bill(templates: TemplateSet, locale: str) -> None:
    req = _render(templates, "charge_waiver", locale)
    assert_fit_to_send(req)
    for part in (req.text, req.html):
        assert _money("2.50", locale) in part
        assert WORDS[_language(locale)]["charge_waiver"] in part


@pytest.mark.parametrize("locale", LOCALES)
def test_voucher_gives_code_amount_and_expiry(templates: TemplateSet, locale: str) -> None:
    req = _render(templates, "voucher", locale)
    assert_fit_to_send(req)
    expiry = format_date(VOUCHER_EXPIRES.date(), "long", locale=Locale.parse(locale, sep="-"))
    for part in (req.text, req.html):
        assert "SORRY-4F7K" in part
        assert _money("20.00", locale) in part
        assert expiry in part


def test_voucher_expiry_literal_in_english(templates: TemplateSet) -> None:
    assert "valid until November 22, 2027" in _render(templates, "voucher", "en-US").text


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("remedy", ["replacement", "repair"])
def test_replacement_and_repair_are_said_plainly(templates: TemplateSet, locale: str, remedy: str) -> None:
    req = _render(templates, remedy, locale)
    assert_fit_to_send(req)
    assert WORDS[_language(locale)][remedy] in req.text
    assert WORDS[_language(locale)][remedy] in req.html


@pytest.mark.parametrize("locale", LOCALES)
def test_cancellation_is_confirmed_with_its_refund(templates: TemplateSet, locale: str) -> None:
    req = _render(templates, "cancellation", locale)
    assert_fit_to_send(req)
    words = WORDS[_language(locale)]
    for part in (req.text, req.html):
        assert words["cancellation"] in part
        assert _money("12.00", locale) in part
        assert words["settlement"] in part


@pytest.mark.parametrize("locale", LOCALES)
def test_every_remedy_at_once(templates: TemplateSet, locale: str) -> None:
    data = decision(locale=locale, remedies=list(REMEDIES.values()))
    req = compose(envelope(data), data, templates)
    assert req is not None
    assert_fit_to_send(req)
    assert req.text.count("\n- ") == len(REMEDIES)
    assert req.html.count("<li>") == len(REMEDIES)


@pytest.mark.parametrize("locale", LOCALES)
def test_declined_explains_the_reason(templates: TemplateSet, locale: str) -> None:
    reason = "The charge was for the plan you chose on 2 May, and it is correct."
    data = decision(locale=locale, outcome="declined", remedies=[], reasons=[reason])
    req = compose(envelope(data), data, templates)
    assert req is not None
    assert_fit_to_send(req)
    assert req.template == "decision_declined"
    for part in (req.text, req.html):
        assert WORDS[_language(locale)]["declined"] in part
        assert reason in part


def test_declined_still_states_a_goodwill_voucher(templates: TemplateSet) -> None:
    data = decision(outcome="declined", remedies=[REMEDIES["voucher"]])
    req = compose(envelope(data), data, templates)
    assert req is not None
    assert "SORRY-4F7K" in req.text
    assert "SORRY-4F7K" in req.html


@pytest.mark.parametrize("locale", LOCALES)
def test_late_decision_also_apologises_for_the_delay(templates: TemplateSet, locale: str) -> None:
    late = decision(locale=locale, within_sla=False)
    on_time = decision(locale=locale, within_sla=True)
    late_req = compose(envelope(late), late, templates)
    on_time_req = compose(envelope(on_time), on_time, templates)
    assert late_req is not None
    assert on_time_req is not None
    assert_fit_to_send(late_req)
    words = WORDS[_language(locale)]
    assert words["late"] in late_req.text
    assert words["late"] in late_req.html
    assert words["late"] not in on_time_req.text
    assert late_req.template == on_time_req.template == "decision_resolved"


@pytest.mark.parametrize("locale", LOCALES)
def test_escalation_ack_names_the_owner_and_when_they_will_hear(templates: TemplateSet, locale: str) -> None:
    data = escalation(locale=locale)
    req = compose(envelope(data), data, templates)
    assert req is not None
    assert_fit_to_send(req)
    assert req.template == "escalation_ack"
    assert OWNER.name in req.subject
    day = format_date(data.due_by.date(), "long", locale=Locale.parse(locale, sep="-"))
    for part in (req.text, req.html):
        assert day in part
        assert WORDS[_language(locale)]["utc"] in part


def test_escalation_ack_literal_time_in_english(templates: TemplateSet) -> None:
    data = escalation(locale="en-US")
    req = compose(envelope(data), data, templates)
    assert req is not None
    assert "by November 22, 2026, 6:30\u202fPM (UTC) at the latest" in req.text


def test_escalation_ack_literal_time_in_spain(templates: TemplateSet) -> None:
    data = escalation(locale="es-ES")
    req = compose(envelope(data), data, templates)
    assert req is not None
    assert "a más tardar el 22 de noviembre de 2026, 18:30 (hora UTC)" in req.text


def _on_the_team_calendar(locale: str, zone: str = "America/Bogota") -> CaseEscalated:
    # Tuesday 8 December 2026, 19:00 UTC: 14:00 in Bogotá, 20:00 in Madrid.
    return escalation(locale=locale).model_copy(update={
        "person_due_by": datetime(2026, 12, 8, 19, 0, tzinfo=UTC),
        "calendar": CalendarRef(id="team", version="2", zone=zone),
    })  # fmt: skip


def test_escalation_ack_tells_when_a_person_decides_on_the_team_s_clock_in_spanish(templates: TemplateSet) -> None:
    data = _on_the_team_calendar("es-ES")
    req = compose(envelope(data), data, templates)
    assert req is not None
    assert_fit_to_send(req)
    for part in (req.text, req.html):
        assert "el martes 8 de diciembre antes de las 14:00 (hora de Bogotá)" in part
        assert "(hora UTC)" not in part
    # The time as the customer's locale writes it.
    data = _on_the_team_calendar("es-CO")
    req = compose(envelope(data), data, templates)
    assert req is not None
    assert "el martes 8 de diciembre antes de las 2:00" in req.text


def test_escalation_ack_tells_when_a_person_decides_on_the_team_s_clock_in_english(templates: TemplateSet) -> None:
    data = _on_the_team_calendar("en-US", "Europe/Madrid")
    req = compose(envelope(data), data, templates)
    assert req is not None
    assert "by Tuesday 8 December before 8:00\u202fPM (Madrid time)" in req.text


@pytest.mark.parametrize(("with_customer", "with_owner"), [(False, True), (True, False)])
def test_escalation_without_someone_to_write_to_sends_nothing(
    templates: TemplateSet, with_customer: bool, with_owner: bool
) -> None:
    data = escalation(with_customer=with_customer, with_owner=with_owner)
    assert compose(envelope(data), data, templates) is None


def test_a_replayed_event_sends_nothing(templates: TemplateSet) -> None:
    data = decision()
    replayed = envelope(data).model_copy(update={"replay": True})
    assert compose(replayed, data, templates) is None


def test_html_escapes_what_the_customer_typed(templates: TemplateSet) -> None:
    name = "<script>alert('x')</script> & Co"
    data = decision(name=name, outcome="declined", remedies=[], reasons=["<b>bold</b> claim"])
    req = compose(envelope(data), data, templates)
    assert req is not None
    assert "<script>" not in req.html
    assert "<b>" not in req.html
    assert "&lt;script&gt;" in req.html
    assert "&amp; Co" in req.html
    assert "&lt;b&gt;bold&lt;/b&gt;" in req.html
    assert name in req.text, "the text part is plain text, not HTML"
    assert req.to.name == name


def test_addresses_and_causation(templates: TemplateSet) -> None:
    data = decision(locale="es-CO")
    event = envelope(data)
    req = compose(event, data, templates)
    assert req is not None
    assert (req.to.name, req.to.email) == (data.customer.name, data.customer.email)
    assert (req.reply_to.name, req.reply_to.email) == (OWNER.name, OWNER.email)
    assert req.causation == event.id
    assert req.case_id == data.case_id
    assert req.locale == "es-CO"


@pytest.mark.parametrize(
    ("locale", "language", "tag", "literal"),
    [
        ("fr-FR", "en", "en", "$4.99"),
        ("es-MX", "es", "es-MX", _money("4.99", "es-MX")),
        ("xx-YY", "en", "en", "$4.99"),
        ("en-GB", "en", "en-GB", "US$4.99"),
    ],
)
def test_language_falls_back_to_english(
    templates: TemplateSet, locale: str, language: str, tag: str, literal: str
) -> None:
    req = _render(templates, "refund", locale)
    assert req.locale == tag
    assert WORDS[language]["apology"] in req.text
    assert literal in req.text


def test_same_event_gives_the_same_request_byte_for_byte(templates: TemplateSet) -> None:
    data = decision(locale="es-CO", remedies=list(REMEDIES.values()), within_sla=False)
    first = compose(envelope(data), data, templates)
    again = compose(envelope(data), data, load_templates())
    assert first is not None
    assert again is not None
    assert first.model_dump_json() == again.model_dump_json()


def test_notification_id_is_stable_per_event_and_template(templates: TemplateSet) -> None:
    data = decision()
    first = compose(envelope(data, "event-1"), data, templates)
    redelivered = compose(envelope(data, "event-1"), data, templates)
    other_event = compose(envelope(data, "event-2"), data, templates)
    assert first is not None
    assert redelivered is not None
    assert other_event is not None
    assert first.notification_id == redelivered.notification_id
    assert first.notification_id != other_event.notification_id
    assert first.notification_id == notification_id("event-1", "decision_resolved")
    assert notification_id("event-1", "decision_resolved") != notification_id("event-1", "escalation_ack")
    # Pinned: a changed namespace would make every past notification look new.
    assert notification_id("event-1", "decision_resolved") == ("4cce93d6-85da-5a69-bd0e-b577d1a219d9")
