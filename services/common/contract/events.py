"""The data of every event type in docs/contract.md, as frozen pydantic models.

Each model names its CloudEvents ``type`` (``TYPE``) and the logical topic it travels on
(``TOPIC``: one of ``charges``, ``complaints``, ``decisions``, ``notifications``, ``dlq``;
settings map these to topic names). Unknown fields are ignored so producers can add fields
first; money is checked against the currency's minor units; times must carry a zone.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from services.common.contract.money import Amount, Currency, check_minor_units

NonEmpty = Field(min_length=1, max_length=256)

# An address checked for shape (one @, a dotted domain, no spaces), as every hop of a
# delivery pipeline does; full RFC 5321 parsing is the mail server's job and cost a fifth
# of the recovery service's time per complaint.
EmailStr = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
    Field(json_schema_extra={"format": "email"}),
]


class WireModel(BaseModel):
    """Base of every wire model: frozen, unknown fields ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)


class EventData(WireModel):
    """The ``data`` of one event type."""

    TYPE: ClassVar[str]
    TOPIC: ClassVar[str]


def _check_money(model: BaseModel, amount_field: str = "amount") -> None:
    amount: Decimal | None = getattr(model, amount_field)
    check_minor_units(amount, getattr(model, "currency", None), amount_field)


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
    sku: str | None = None
    name: str | None = None
    type: Literal["digital", "physical", "service"]


class Customer(WireModel):
    id: str = NonEmpty
    name: str = Field(min_length=1, max_length=256)
    email: EmailStr
    locale: str = Field(default="en-US", pattern=r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*$")


class Person(WireModel):
    """A case owner or an agent: the named person the customer deals with."""

    id: str = NonEmpty
    name: str = Field(min_length=1, max_length=256)
    email: EmailStr


class Recipient(WireModel):
    name: str = Field(min_length=1, max_length=256)
    email: EmailStr


class Reason(WireModel):
    code: str = NonEmpty
    text: str = Field(min_length=1, max_length=2000)


class PolicyRef(WireModel):
    id: str = NonEmpty
    version: str = NonEmpty
    rule: str = NonEmpty


class Remedy(WireModel):
    """One remedy granted; each type carries the fields it needs."""

    type: RemedyType
    charge_id: str | None = None
    amount: Amount | None = None
    currency: Currency | None = None
    voucher_code: str | None = None
    expires_at: AwareDatetime | None = None
    settlement: str | None = None

    @model_validator(mode="after")
    def _fields_for_type(self) -> Remedy:
        _check_money(self)
        if self.type in ("refund", "charge_waiver", "voucher") and self.amount is None:
            raise ValueError(f"a {self.type} remedy needs an amount and a currency")
        if self.type == "voucher" and (self.voucher_code is None or self.expires_at is None):
            raise ValueError("a voucher remedy needs voucher_code and expires_at")
        return self


# --------------------------------------------------------------------------- billing.charges


class ChargePosted(EventData):
    TYPE: ClassVar[str] = "billing.charge.posted.v1"
    TOPIC: ClassVar[str] = "charges"

    charge_id: str = NonEmpty
    customer_id: str = NonEmpty
    amount: Amount
    currency: Currency
    kind: ChargeKind
    description: str = Field(default="", max_length=2000)
    product: Product | None = None
    order_id: str | None = None
    merchant: str | None = None
    posted_at: AwareDatetime

    @model_validator(mode="after")
    def _money(self) -> ChargePosted:
        _check_money(self)
        return self


class ChargeRefunded(EventData):
    TYPE: ClassVar[str] = "billing.charge.refunded.v1"
    TOPIC: ClassVar[str] = "charges"

    charge_id: str = NonEmpty
    refund_id: str = NonEmpty
    amount: Amount
    currency: Currency
    refunded_at: AwareDatetime

    @model_validator(mode="after")
    def _money(self) -> ChargeRefunded:
        _check_money(self)
        return self


# --------------------------------------------------------------------------- customer.complaints


class ComplaintFiled(EventData):
    TYPE: ClassVar[str] = "complaint.filed.v1"
    TOPIC: ClassVar[str] = "complaints"

    complaint_id: str = NonEmpty
    customer: Customer
    channel: Channel
    category: Category
    charge_id: str | None = None
    order_id: str | None = None
    claimed_amount: Amount | None = None
    currency: Currency | None = None
    purchased_at: AwareDatetime | None = None
    remedy_preference: RemedyPreference | None = None
    description: str = Field(default="", max_length=10_000)
    filed_at: AwareDatetime

    @model_validator(mode="after")
    def _money(self) -> ComplaintFiled:
        _check_money(self, "claimed_amount")
        return self


# --------------------------------------------------------------------------- recovery.decisions


class CaseOpened(EventData):
    TYPE: ClassVar[str] = "recovery.case.opened.v1"
    TOPIC: ClassVar[str] = "decisions"

    case_id: str = NonEmpty
    customer_id: str = NonEmpty
    complaint_id: str = NonEmpty
    category: Category
    case_owner: Person
    sla_deadline: AwareDatetime


class DecisionMade(EventData):
    TYPE: ClassVar[str] = "recovery.decision.made.v1"
    TOPIC: ClassVar[str] = "decisions"

    case_id: str = NonEmpty
    complaint_id: str = NonEmpty
    customer: Customer
    outcome: Literal["resolved", "declined"]
    remedies: list[Remedy] = Field(default_factory=list)
    reasons: list[Reason] = Field(min_length=1)
    policy: PolicyRef
    decided_by: str = Field(pattern=r"^(policy|agent:.+)$")
    case_owner: Person
    decided_at: AwareDatetime
    sla_deadline: AwareDatetime
    within_sla: bool


class CaseEscalated(EventData):
    TYPE: ClassVar[str] = "recovery.case.escalated.v1"
    TOPIC: ClassVar[str] = "decisions"

    case_id: str = NonEmpty
    reason: Reason
    priority: Priority
    assignee: str = NonEmpty
    due_by: AwareDatetime
    # Added (optional, contract changes only by adding): what the notifier needs for the
    # prompt acknowledgement of an escalated case.
    complaint_id: str | None = None
    customer: Customer | None = None
    case_owner: Person | None = None


class SlaWarning(EventData):
    TYPE: ClassVar[str] = "recovery.sla.warning.v1"
    TOPIC: ClassVar[str] = "decisions"

    case_id: str = NonEmpty
    sla_deadline: AwareDatetime
    at: AwareDatetime


class SlaBreached(EventData):
    TYPE: ClassVar[str] = "recovery.sla.breached.v1"
    TOPIC: ClassVar[str] = "decisions"

    case_id: str = NonEmpty
    sla_deadline: AwareDatetime
    at: AwareDatetime


class ChargeFlagged(EventData):
    TYPE: ClassVar[str] = "recovery.charge.flagged.v1"
    TOPIC: ClassVar[str] = "decisions"

    charge_id: str = NonEmpty
    customer_id: str = NonEmpty
    amount: Amount
    currency: Currency
    reason: Reason

    @model_validator(mode="after")
    def _money(self) -> ChargeFlagged:
        _check_money(self)
        return self


# --------------------------------------------------------------------------- notifications.email


class EmailRequested(EventData):
    TYPE: ClassVar[str] = "notification.email.requested.v1"
    TOPIC: ClassVar[str] = "notifications"

    notification_id: str = NonEmpty
    case_id: str = NonEmpty
    to: Recipient
    reply_to: Recipient
    locale: str = NonEmpty
    subject: str = Field(min_length=1, max_length=500)
    text: str = Field(min_length=1)
    html: str = Field(min_length=1)
    template: str = NonEmpty
    causation: str = NonEmpty


class EmailDelivered(EventData):
    TYPE: ClassVar[str] = "notification.email.delivered.v1"
    TOPIC: ClassVar[str] = "notifications"

    notification_id: str = NonEmpty
    at: AwareDatetime


class EmailFailed(EventData):
    TYPE: ClassVar[str] = "notification.email.failed.v1"
    TOPIC: ClassVar[str] = "notifications"

    notification_id: str = NonEmpty
    at: AwareDatetime
    error: str = Field(min_length=1)


# --------------------------------------------------------------------------- recovery.dlq


class OriginalMessage(WireModel):
    topic: str
    partition: int | None = None
    offset: int | None = None
    key: str | None = None
    value: str = Field(description="the raw value, as UTF-8 text or base64")
    value_encoding: Literal["text", "base64"] = "text"
    value_bytes: int | None = Field(default=None, ge=0, description="the whole original value's length in bytes")
    value_sha256: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the whole original value, in hex"
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
    message: str
    details: list[dict[str, Any]] = Field(default_factory=list)


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
