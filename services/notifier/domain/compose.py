"""Decision or escalation in, one apology email request out: pure and deterministic.

The same event always gives the same :class:`EmailRequested`, byte for byte: the id is a
UUID over the event id and the template, and everything shown is formatted from the event
alone (no clock, no randomness, times in UTC). The case is named by its reference
(:mod:`services.recovery.domain.reference`), derived from the case id here rather than
carried on the event, so every decision and escalation has one, those recorded before
references existed too.

Which template:

- ``recovery.decision.made.v1`` resolved → ``decision_resolved``; declined (only agents
  decline) → ``decision_declined``. A decision made after its SLA (``within_sla`` false)
  also apologises for the delay, in the same email: one apology per decision.
- ``recovery.case.escalated.v1`` with ``customer`` and ``case_owner`` → ``escalation_ack``:
  the apology, the named owner, and when the customer will hear back: when the escalation
  carries the person's deadline and its calendar, when a person will decide, on the wall
  clock of the calendar's zone (the team's place, named); else the deadline in UTC. Without
  them there is no one to write to or sign as: :func:`compose` returns ``None``.
- An event re-published from the store (``replay`` set on the envelope) was answered
  when it first happened: ``None``, so a replay never emails a customer twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.common.contract.envelope import CloudEvent
from services.common.contract.events import (
    CaseEscalated,
    DecisionMade,
    EmailRequested,
    Recipient,
    Remedy,
)
from services.notifier.domain.ids import notification_id
from services.notifier.domain.locales import (
    CustomerLocale,
    Settlement,
    format_day,
    format_local_moment,
    format_moment_utc,
    format_money,
    parse_settlement,
    resolve_locale,
)
from services.notifier.domain.templates import (
    DECISION_DECLINED,
    DECISION_RESOLVED,
    ESCALATION_ACK,
    Rendered,
    TemplateSet,
)
from services.recovery.domain.reference import case_reference


@dataclass(frozen=True)
class PersonView:
    """A person as templates see them."""

    name: str
    email: str


@dataclass(frozen=True)
class RemedyView:
    """A remedy with its money and dates already written in the customer's locale.

    ``type`` is one of ``refund``, ``charge_waiver``, ``voucher``, ``replacement``,
    ``repair``, ``cancellation``; fields the remedy does not have are ``None``.
    """

    type: str
    amount: str | None
    charge_id: str | None
    voucher_code: str | None
    expires_on: str | None
    settlement: Settlement | None


def _remedy_view(remedy: Remedy, locale: CustomerLocale) -> RemedyView:
    amount = None
    if remedy.amount is not None and remedy.currency is not None:
        amount = format_money(remedy.amount, remedy.currency, locale)
    expires = format_day(remedy.expires_at, locale) if remedy.expires_at is not None else None
    return RemedyView(
        type=remedy.type,
        amount=amount,
        charge_id=remedy.charge_id,
        voucher_code=remedy.voucher_code,
        expires_on=expires,
        settlement=parse_settlement(remedy.settlement),
    )


def template_for(data: DecisionMade | CaseEscalated) -> str:
    """The template that writes to the customer about ``data``."""
    if isinstance(data, CaseEscalated):
        return ESCALATION_ACK
    return DECISION_RESOLVED if data.outcome == "resolved" else DECISION_DECLINED


def _template_and_context(data: DecisionMade | CaseEscalated, locale: CustomerLocale) -> tuple[str, dict[str, object]]:
    """The template for ``data`` and the variables only that template has."""
    template = template_for(data)
    if isinstance(data, CaseEscalated):
        decide_by = None
        if data.person_due_by is not None and data.calendar is not None:
            decide_by = format_local_moment(data.person_due_by, data.calendar.zone, locale)
        return template, {"due_by": format_moment_utc(data.due_by, locale), "decide_by": decide_by}
    return template, {
        "late": not data.within_sla,
        "remedies": [_remedy_view(r, locale) for r in data.remedies],
        "reasons": [r.text for r in data.reasons],
    }


def render_email(data: DecisionMade | CaseEscalated, templates: TemplateSet) -> tuple[str, Rendered] | None:
    """The template and the email for ``data`` in the customer's language, as the customer
    gets it (the escalation desk previews it with this); None when ``data`` names no customer
    or no case owner."""
    customer, owner = data.customer, data.case_owner
    if customer is None or owner is None:
        return None
    locale = resolve_locale(customer.locale)
    template, context = _template_and_context(data, locale)
    rendered = templates.render(
        locale.language,
        template,
        {
            "case_id": data.case_id,
            "reference": case_reference(data.case_id),
            "customer": PersonView(customer.name, str(customer.email)),
            "owner": PersonView(owner.name, str(owner.email)),
            **context,
        },
    )
    return template, rendered


def compose(event: CloudEvent, data: DecisionMade | CaseEscalated, templates: TemplateSet) -> EmailRequested | None:
    """The one email request for ``event`` (whose typed data is ``data``), or ``None``.

    ``None`` for a replayed event and for an escalation that names no customer or no case
    owner; the caller logs it. Raises
    :class:`~services.notifier.domain.errors.TemplateSetError` if a template fails to render.
    """
    if event.replay:
        return None
    email = render_email(data, templates)
    if email is None:
        return None
    template, rendered = email
    customer, owner = data.customer, data.case_owner
    assert customer is not None
    assert owner is not None
    locale = resolve_locale(customer.locale)
    return EmailRequested(
        notification_id=notification_id(event.id, template),
        case_id=data.case_id,
        to=Recipient(name=customer.name, email=customer.email),
        reply_to=Recipient(name=owner.name, email=owner.email),
        locale=locale.tag,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        template=template,
        causation=event.id,
        decided_at=data.decided_at if isinstance(data, DecisionMade) else None,
    )
