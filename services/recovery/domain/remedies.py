"""Building remedies: refunds, waivers, vouchers with deterministic codes, goods and service.

Voucher codes are derived from the case id and the case's voucher sequence number, never
drawn at random, so a replay of a case issues the very same codes it issued live.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from services.common.contract.events import Remedy, RemedyType
from services.common.contract.money import quantize
from services.recovery.domain import build

VOUCHER_PREFIX = "RV"


def voucher_code(case_id: str, sequence: int) -> str:
    """The code of the case's ``sequence``-th voucher (0-based): ``RV-XXXX-XXXX-XXXX``."""
    digest = hashlib.sha256(f"{case_id}\x1fvoucher\x1f{sequence}".encode()).digest()
    letters = base64.b32encode(digest).decode()[:12]
    return "-".join((VOUCHER_PREFIX, letters[:4], letters[4:8], letters[8:]))


@dataclass
class VoucherMint:
    """Issues the vouchers of one decision, numbering on from those the case already has.

    ``next_sequence`` starts at ``case.vouchers_issued``; a decision that is not made (say
    the guardrail refers it) consumes nothing, because the count only moves when a
    ``DecisionMade`` is applied.
    """

    case_id: str
    next_sequence: int

    def issue(self, amount: Decimal, currency: str, expires_at: datetime, charge_id: str | None = None) -> Remedy:
        """A voucher remedy with the next code."""
        code = voucher_code(self.case_id, self.next_sequence)
        self.next_sequence += 1
        return build.remedy(
            type="voucher",
            charge_id=charge_id,
            amount=quantize(amount, currency),
            currency=currency,
            voucher_code=code,
            expires_at=expires_at,
        )


def voucher_expiry(now: datetime, valid_days: int) -> datetime:
    """When a voucher issued at ``now`` expires."""
    return now + timedelta(days=valid_days)


def refund(charge_id: str | None, amount: Decimal, currency: str, settlement: str) -> Remedy:
    """Money back to the customer, with when it shows on the statement."""
    return build.remedy(
        type="refund",
        charge_id=charge_id,
        amount=quantize(amount, currency),
        currency=currency,
        settlement=settlement,
    )


def charge_waiver(charge_id: str, amount: Decimal, currency: str) -> Remedy:
    """The charge taken off the bill (a bill correction, not money sent back)."""
    return build.remedy(
        type="charge_waiver",
        charge_id=charge_id,
        amount=quantize(amount, currency),
        currency=currency,
    )


def service(kind: RemedyType, charge_id: str | None) -> Remedy:
    """A remedy without money: ``repair``, ``replacement`` or ``cancellation``."""
    return build.remedy(type=kind, charge_id=charge_id)


def money_text(amount: Decimal, currency: str) -> str:
    """``USD 4.99``: how reasons name an amount."""
    return f"{currency} {format(quantize(amount, currency), 'f')}"
