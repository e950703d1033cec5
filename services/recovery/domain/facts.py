"""What the application knows beyond the case itself, handed to a decision as values.

The domain never queries anything: the application computes the medians and the
customer's concession history from its stores and passes them in, and the facts the
decision used are recorded on the case (``ChargeLinked``), so a replay sees them again.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from services.common.contract.construct import constructor
from services.common.contract.events import ChargeKind, ChargePosted
from services.common.contract.money import Amount, Currency, check_minor_units

ProductType = Literal["digital", "physical", "service"]


class ChargeFacts(BaseModel):
    """A charge as the rules see it, with the usual amounts to compare it against.

    ``usual_customer_amount`` is the median of this customer's *other* charges of the same
    kind, ``usual_all_amount`` the median across all customers for that kind; None where
    there is no history. Medians may carry more decimals than the currency (the middle of
    two amounts); the rules quantize what they compute from them.
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

    @model_validator(mode="after")
    def _money(self) -> ChargeFacts:
        check_minor_units(self.amount, self.currency)
        return self

    @classmethod
    def from_posted(
        cls,
        charge: ChargePosted,
        usual_customer_amount: Amount | None = None,
        usual_all_amount: Amount | None = None,
    ) -> ChargeFacts:
        """The facts of a posted charge, with the medians the application computed."""
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
