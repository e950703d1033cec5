"""A charge as the service has recorded it, folded from the charge's own stream.

The stream holds what billing sent (``ChargePosted``, ``ChargeRefunded``, in the order they
came, a refund possibly before its charge) and the usual amounts the charge was judged by on
arrival (``ChargeAssessed``). A decision reads :meth:`ChargeRecord.facts`: the charge fixed
as it arrived, with billing's refunds so far (each ``refund_id`` once) as its ledger.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from services.common.contract.events import ChargePosted, ChargeRefunded, EventData
from services.recovery.domain.events import ChargeAssessed
from services.recovery.domain.facts import ChargeFacts


@dataclass(slots=True)
class ChargeRecord:
    """``posted``: the facts as the charge arrived (None until it has); ``refunds``: billing's
    refunds by refund id, (amount, currency)."""

    posted: ChargeFacts | None = None
    refunds: dict[str, tuple[Decimal, str]] = field(default_factory=dict)

    def refunded(self, refund: ChargeRefunded) -> None:
        """Count billing's refund in (a refund id confirmed again counts once)."""
        self.refunds.setdefault(refund.refund_id, (refund.amount, refund.currency))

    def facts(self) -> ChargeFacts | None:
        """The charge with its ledger as recorded so far; None if it has not been posted.

        A refund in another currency than the charge's cannot be set against it: the charge
        counts as refunded in full, and what is left of it goes to a person.
        """
        posted = self.posted
        if posted is None or not self.refunds:
            return posted
        if any(currency != posted.currency for _, currency in self.refunds.values()):
            refunded = posted.amount
        else:
            refunded = sum((amount for amount, _ in self.refunds.values()), Decimal(0))
        return posted.model_copy(update={"refunded_amount": refunded})


def charge_record(events: Iterable[EventData]) -> ChargeRecord:
    """The record of a charge from its stream's events (its first posting counts)."""
    record = ChargeRecord()
    posted: ChargePosted | None = None
    assessed: ChargeAssessed | None = None
    for event in events:
        if type(event) is ChargePosted and posted is None:
            posted = event
        elif type(event) is ChargeAssessed and assessed is None:
            assessed = event
        elif type(event) is ChargeRefunded:
            record.refunded(event)
    if posted is not None:
        record.posted = ChargeFacts.from_posted(
            posted,
            usual_customer_amount=assessed.usual_customer_amount if assessed else None,
            usual_all_amount=assessed.usual_all_amount if assessed else None,
        )
    return record
