"""What the application knows beyond the case itself, handed to a decision as values.

The domain never queries anything: the application computes the medians and the
customer's concession history from its stores and passes them in, and the facts the
decision used are recorded on the case (``ChargeLinked``), so a replay sees them again.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer, model_validator

from services.common.contract.construct import constructor
from services.common.contract.events import ChargeKind, ChargePosted
from services.common.contract.money import Amount, Currency, check_minor_units, format_amount

ProductType = Literal["digital", "physical", "service"]
NoneOrMore = Annotated[Decimal, Field(ge=0), PlainSerializer(format_amount, return_type=str, when_used="json")]
"""An amount of money that may be zero (what has been refunded so far)."""


class ChargeFacts(BaseModel):
    """A charge as the rules see it, with the usual amounts to compare it against.

    ``usual_customer_amount`` is the median of this customer's charges of the same kind
    that came before it, ``usual_all_amount`` the median of all customers' charges of that
    kind before it; None where there is none. Both are fixed when the charge arrives. Medians
    may carry more decimals than the currency (the middle of two amounts); the rules
    quantize what they compute from them.

    ``refunded_amount``: what billing has confirmed refunding on the charge, in its currency,
    as the application read it for this decision (part of the charge's remedy ledger, see
    ``ledger.py``; it moves on, the rest stays as it was at arrival).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    charge_id: str = Field(min_length=1)
    customer_id: str = Field(min_length=1)
    amount: Amount
    currency: Currency
    kind: ChargeKind
    product_type: ProductType | None = None
    order_id: str | None = None
    posted_at: AwareDatetime
    usual_customer_amount: Amount | None = None
    usual_all_amount: Amount | None = None
    refunded_amount: NoneOrMore = Decimal(0)

    @model_validator(mode="after")
    def _money(self) -> ChargeFacts:
        check_minor_units(self.amount, self.currency)
        check_minor_units(self.refunded_amount, self.currency, "refunded_amount")
        return self

    def with_ledger(self, fresh: ChargeFacts) -> ChargeFacts:
        """These facts with the ledger of ``fresh`` (the same charge read again later)."""
        return self.model_copy(update={"refunded_amount": fresh.refunded_amount})

    @classmethod
    def from_posted(
        cls,
        charge: ChargePosted,
        usual_customer_amount: Amount | None = None,
        usual_all_amount: Amount | None = None,
        refunded_amount: Decimal = Decimal(0),
    ) -> ChargeFacts:
        """The facts of a posted charge, with the medians and the refunds the application read."""
        # Trusted: every value comes from the validated charge or the read model's medians.
        return constructor(cls)(
            charge_id=charge.charge_id,
            customer_id=charge.customer_id,
            amount=charge.amount,
            currency=charge.currency,
            kind=charge.kind,
            product_type=charge.product.type if charge.product else None,
            order_id=charge.order_id,
            posted_at=charge.posted_at,
            usual_customer_amount=usual_customer_amount,
            usual_all_amount=usual_all_amount,
            refunded_amount=refunded_amount,
        )


class CustomerHistory(BaseModel):
    """What the application knows about the customer across cases.

    ``concession_times``: when this customer's earlier *automatic* concessions were decided
    (see :func:`services.recovery.domain.guardrail.is_concession`); the guardrail counts
    those in its window before ``now`` and ignores any after it (a what-if replay may hand
    in the whole history). ``previous_owner_id``: the owner of the customer's last case.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    concession_times: tuple[AwareDatetime, ...] = ()
    previous_owner_id: str | None = None


NO_HISTORY = CustomerHistory()
"""A first-time customer's history (shared: the model is frozen)."""
