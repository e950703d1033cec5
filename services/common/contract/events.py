"""The data of every event type in docs/contract.md, as frozen pydantic models.

Each model names its CloudEvents ``type`` (``TYPE``) and the logical topic it travels on
(``TOPIC``: one of ``charges``, ``complaints``, ``decisions``, ``notifications``, ``dlq``;
settings map these to topic names). Unknown fields are ignored so producers can add fields
first; money is checked against the currency's minor units; times must carry a zone. Every
string has a maximum length and every list a maximum size (:mod:`.limits`).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from services.common.contract.limits import (
    MAX_COMPLAINT_TEXT_LENGTH,
    MAX_EMAIL_BODY_LENGTH,
    MAX_EMAIL_LENGTH,
    MAX_EMAIL_SUBJECT_LENGTH,
    MAX_ERROR_DETAILS,
    MAX_ID_LENGTH,
    MAX_LIST_ITEMS,
    MAX_LOCALE_LENGTH,
    MAX_NAME_LENGTH,
    MAX_TEXT_LENGTH,
    MAX_TOPIC_LENGTH,
)
from services.common.contract.money import Amount, Currency, check_minor_units

Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH)]
"""A person's name, or a short label: a code, a version, a template."""
Text = Annotated[str, Field(max_length=MAX_TEXT_LENGTH)]
# Optional strings that have always taken "" keep taking it: only their length is new.
OptionalId = Annotated[str, Field(max_length=MAX_ID_LENGTH)] | None
OptionalName = Annotated[str, Field(max_length=MAX_NAME_LENGTH)] | None
Locale = Annotated[str, Field(max_length=MAX_LOCALE_LENGTH, pattern=r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*$")]

# An address checked for shape (one @, a dotted domain, no spaces), as every hop of a
# delivery pipeline does; full RFC 5321 parsing is the mail server's job and cost a fifth
# of the recovery service's time per complaint.
EmailStr = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=MAX_EMAIL_LENGTH, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
    Field(json_schema_extra={"format": "email"}),
]


class WireModel(BaseModel):
    """Base of every wire model: frozen, unknown fields ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)


class EventData(WireModel):
    """The ``data`` of one event type."""

    TYPE: ClassVar[str]
    TOPIC: ClassVar[str]


# --------------------------------------------------------------------------- shared parts

ChargeKind = Literal["purchase", "subscription", "usage", "long_distance", "shipping", "late_fee", "fee", "other"]
Category = Literal[
    "delivery_failed",
    "charge_disputed",
    "damaged_item",
    "defective_product",
    "cancellation",
    "service_failure",
    "other",
]
Channel = Literal["web", "email", "phone", "chat", "social", "store"]
RemedyType = Literal["refund", "charge_waiver", "voucher", "replacement", "repair", "cancellation"]
RemedyPreference = Literal["refund", "repair", "replacement", "credit"]
Priority = Literal["normal", "high", "urgent"]


class Product(WireModel):
    sku: OptionalId = None
    name: OptionalName = None
    type: Literal["digital", "physical", "service"]


class Customer(WireModel):
    id: Id
    name: Name
    email: EmailStr
    locale: Locale = "en-US"


class Person(WireModel):
    """A case owner or an agent: the named person the customer deals with."""

    id: Id
    name: Name
    email: EmailStr


class Recipient(WireModel):
    name: Name
    email: EmailStr


class Reason(WireModel):
    code: Name
    text: Text = Field(min_length=1)


class PolicyRef(WireModel):
    id: Name
    version: Name
    rule: Name


class CalendarRef(WireModel):
    """The business-hours calendar a deadline was counted on: its id, version and time zone."""

    id: Name
    version: Name
    zone: Name


class Remedy(WireModel):
    """One remedy granted; each type carries the fields it needs."""

    type: RemedyType
    charge_id: OptionalId = None
    amount: Amount | None = None
    currency: Currency | None = None
    voucher_code: OptionalName = None
    expires_at: AwareDatetime | None = None
    settlement: OptionalName = None

    @model_validator(mode="after")
    def _fields_for_type(self) -> Remedy:
        check_minor_units(self.amount, self.currency)
        if self.type in ("refund", "charge_waiver", "voucher") and self.amount is None:
            raise ValueError(f"a {self.type} remedy needs an amount and a currency")
        if self.type == "voucher" and (self.voucher_code is None or self.expires_at is None):
            raise ValueError("a voucher remedy needs voucher_code and expires_at")
        return self


# --------------------------------------------------------------------------- billing.charges


class ChargePosted(EventData):
    TYPE: ClassVar[str] = "billing.charge.posted.v1"
    TOPIC: ClassVar[str] = "charges"

    charge_id: Id
    customer_id: Id
    amount: Amount
    currency: Currency
    kind: ChargeKind
    description: Text = ""
    product: Product | None = None
    order_id: OptionalId = None
    merchant: OptionalName = None
    posted_at: AwareDatetime

    @model_validator(mode="after")
    def _money(self) -> ChargePosted:
        check_minor_units(self.amount, self.currency)
        return self


class ChargeRefunded(EventData):
    TYPE: ClassVar[str] = "billing.charge.refunded.v1"
    TOPIC: ClassVar[str] = "charges"

    charge_id: Id
    refund_id: Id
    amount: Amount
    currency: Currency
    refunded_at: AwareDatetime

    @model_validator(mode="after")
    def _money(self) -> ChargeRefunded:
        check_minor_units(self.amount, self.currency)
        return self


# --------------------------------------------------------------------------- customer.complaints


class ComplaintFiled(EventData):
    TYPE: ClassVar[str] = "complaint.filed.v1"
    TOPIC: ClassVar[str] = "complaints"

    complaint_id: Id
    customer: Customer
    channel: Channel
    category: Category
    charge_id: OptionalId = None
    order_id: OptionalId = None
    claimed_amount: Amount | None = None
    currency: Currency | None = None
    purchased_at: AwareDatetime | None = None
    remedy_preference: RemedyPreference | None = None
    description: str = Field(default="", max_length=MAX_COMPLAINT_TEXT_LENGTH)
    filed_at: AwareDatetime

    @model_validator(mode="after")
    def _money(self) -> ComplaintFiled:
        if self.claimed_amount is not None:  # a Python call less for most complaints
            check_minor_units(self.claimed_amount, self.currency, "claimed_amount")
        return self


# --------------------------------------------------------------------------- recovery.decisions


class CaseOpened(EventData):
    TYPE: ClassVar[str] = "recovery.case.opened.v1"
    TOPIC: ClassVar[str] = "decisions"

    case_id: Id
    customer_id: Id
    complaint_id: Id
    category: Category
    case_owner: Person
    sla_deadline: AwareDatetime


class DecisionMade(EventData):
    TYPE: ClassVar[str] = "recovery.decision.made.v1"
    TOPIC: ClassVar[str] = "decisions"

    case_id: Id
    complaint_id: Id
    customer: Customer
    outcome: Literal["resolved", "declined"]
    remedies: list[Remedy] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    reasons: list[Reason] = Field(min_length=1, max_length=MAX_LIST_ITEMS)
    policy: PolicyRef
    decided_by: str = Field(max_length=len("agent:") + MAX_ID_LENGTH, pattern=r"^(policy|agent:.+)$")
    case_owner: Person
    decided_at: AwareDatetime
    sla_deadline: AwareDatetime
    within_sla: bool


class CaseEscalated(EventData):
    TYPE: ClassVar[str] = "recovery.case.escalated.v1"
    TOPIC: ClassVar[str] = "decisions"

    case_id: Id
    reason: Reason
    priority: Priority
    assignee: Id
    due_by: AwareDatetime
    # Added (optional, contract changes only by adding): what the notifier needs for the
    # prompt acknowledgement of an escalated case.
    complaint_id: OptionalId = None
    customer: Customer | None = None
    case_owner: Person | None = None
    # Added: the person's deadline, counted in business hours on the assignee's team calendar
    # (none when that team has no calendar), the warning on that clock, and the calendar.
    person_due_by: AwareDatetime | None = None
    person_warning_at: AwareDatetime | None = None
    calendar: CalendarRef | None = None


class SlaWarning(EventData):
    TYPE: ClassVar[str] = "recovery.sla.warning.v1"
    TOPIC: ClassVar[str] = "decisions"

    case_id: Id
    sla_deadline: AwareDatetime
    at: AwareDatetime


class SlaBreached(EventData):
    TYPE: ClassVar[str] = "recovery.sla.breached.v1"
    TOPIC: ClassVar[str] = "decisions"

    case_id: Id
    sla_deadline: AwareDatetime
    at: AwareDatetime


class ChargeFlagged(EventData):
    TYPE: ClassVar[str] = "recovery.charge.flagged.v1"
    TOPIC: ClassVar[str] = "decisions"

    charge_id: Id
    customer_id: Id
    amount: Amount
    currency: Currency
    reason: Reason

    @model_validator(mode="after")
    def _money(self) -> ChargeFlagged:
        check_minor_units(self.amount, self.currency)
        return self


# --------------------------------------------------------------------------- notifications.email


class EmailRequested(EventData):
    TYPE: ClassVar[str] = "notification.email.requested.v1"
    TOPIC: ClassVar[str] = "notifications"

    notification_id: Id
    case_id: Id
    to: Recipient
    reply_to: Recipient
    locale: str = Field(min_length=1, max_length=MAX_LOCALE_LENGTH)
    subject: str = Field(min_length=1, max_length=MAX_EMAIL_SUBJECT_LENGTH)
    text: str = Field(min_length=1, max_length=MAX_EMAIL_BODY_LENGTH)
    html: str = Field(min_length=1, max_length=MAX_EMAIL_BODY_LENGTH)
    template: Name
    causation: Id
    # Added (optional): when the decision it answers was made, so the time from decision to
    # delivered email can be measured where the email is sent. None for an escalation.
    decided_at: AwareDatetime | None = None


class EmailDelivered(EventData):
    TYPE: ClassVar[str] = "notification.email.delivered.v1"
    TOPIC: ClassVar[str] = "notifications"

    notification_id: Id
    at: AwareDatetime


class EmailFailed(EventData):
    TYPE: ClassVar[str] = "notification.email.failed.v1"
    TOPIC: ClassVar[str] = "notifications"

    notification_id: Id
    at: AwareDatetime
    error: Text = Field(min_length=1)


# --------------------------------------------------------------------------- recovery.dlq


class OriginalMessage(WireModel):
    """The message as it arrived. Its key and value have no length of their own: they are
    what the broker delivered."""

    topic: str = Field(max_length=MAX_TOPIC_LENGTH)
    partition: int | None = None
    offset: int | None = None
    key: str | None = None
    value: str = Field(description="the raw value, as UTF-8 text or base64")
    value_encoding: Literal["text", "base64"] = "text"
    value_bytes: int | None = Field(default=None, ge=0, description="the whole original value's length in bytes")
    value_sha256: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of the whole original value, in hex",
    )
    truncated: bool = Field(
        default=False,
        description="the original is not kept whole: `value` holds only its first bytes (or the key was cut"
        " or was not UTF-8), so it cannot be sent again as it was",
    )


class DeadLetterError(WireModel):
    code: Literal[
        "not_json", "not_cloudevent", "unknown_type", "invalid_data", "too_large", "rejected", "unprocessable"
    ]
    message: Text
    details: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_ERROR_DETAILS)


class DeadLettered(EventData):
    TYPE: ClassVar[str] = "recovery.deadletter.v1"
    TOPIC: ClassVar[str] = "dlq"

    original: OriginalMessage
    error: DeadLetterError
    received_at: AwareDatetime


ALL_EVENT_TYPES: tuple[type[EventData], ...] = (
    ChargePosted,
    ChargeRefunded,
    ComplaintFiled,
    CaseOpened,
    DecisionMade,
    CaseEscalated,
    SlaWarning,
    SlaBreached,
    ChargeFlagged,
    EmailRequested,
    EmailDelivered,
    EmailFailed,
    DeadLettered,
)
EVENT_TYPES: dict[str, type[EventData]] = {m.TYPE: m for m in ALL_EVENT_TYPES}
