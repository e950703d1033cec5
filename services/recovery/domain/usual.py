"""The usual amounts a new charge is judged by, from the charges before it in log order.

Two medians (``anomaly.py`` says which the rule reads):

- the customer's own: the median of the customer's earlier charges of the same kind and
  currency (the middle amount, or the mean of the two in the middle);
- across customers: ``percentile_disc(0.5)`` of every customer's earlier charges of the kind
  and currency, the amount at position ceil(n/2) in amount order.

"Earlier" is the charges recorded before the batch (read from the read models) and those
earlier in the batch, counted in one by one (:meth:`Usual.assess`): a charge is judged the
same whether it came alone or with its history in one batch, and never by a later charge.
The read model keeps counts per amount across customers; a batch reads only the window of
them the median can reach (:class:`Window`).
"""

from __future__ import annotations

import bisect
import statistics
from dataclasses import dataclass, field
from decimal import Decimal

from services.common.contract.events import ChargePosted
from services.recovery.domain.anomaly import CROSS_CUSTOMER_KINDS


@dataclass(slots=True)
class Window:
    """All customers' earlier charges of one kind and currency.

    ``total`` charges were recorded before the batch; ``rows`` (amount, charges at it, charges
    up to and including it), in amount order, are those of them at the ranks the median can
    reach while up to ``spread`` charges of the batch are added: from ceil((total - spread)
    / 2) to ceil((total + spread) / 2). The batch's charges are counted in by :meth:`add`.
    """

    total: int = 0
    rows: list[tuple[Decimal, int, int]] = field(default_factory=list)
    _added: list[Decimal] = field(default_factory=list, init=False)
    _at: list[Decimal] = field(default_factory=list, init=False)  # the rows' amounts
    _candidates: list[Decimal] = field(default_factory=list, init=False)  # both, in order

    def __post_init__(self) -> None:
        self._at = [r[0] for r in self.rows]
        self._candidates = list(self._at)

    def median(self) -> Decimal | None:
        """percentile_disc(0.5) of the recorded and the added charges, None if none: the
        smallest amount with at least ceil(n/2) of them at or under it (a binary search, as
        that count only grows with the amount)."""
        n = self.total + len(self._added)
        if n == 0:
            return None
        position = (n + 1) // 2
        candidates = self._candidates
        lo, hi = 0, len(candidates) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if self._reaches(candidates[mid], position):
                hi = mid
            else:
                lo = mid + 1
        if not self._reaches(candidates[lo], position):
            raise AssertionError("the window of recorded amounts does not reach the median")
        return candidates[lo]

    def add(self, amount: Decimal) -> None:
        bisect.insort(self._added, amount)
        bisect.insort(self._candidates, amount)

    def _reaches(self, amount: Decimal, position: int) -> bool:
        """Whether at least ``position`` charges are at or under ``amount``. Under the
        window it is never so: at most (the window's first rank - 1) recorded ones plus every
        one added are, which the window's bounds keep under ``position``."""
        if not self.rows:
            recorded = 0
        elif amount < self._at[0]:
            if self.rows[0][2] != self.rows[0][1]:  # the window starts above the first rank
                return False
            recorded = 0
        else:
            recorded = self.rows[bisect.bisect_right(self._at, amount) - 1][2]
        return recorded + bisect.bisect_right(self._added, amount) >= position


@dataclass(slots=True)
class Usual:
    """The usual amounts of a batch's new charges: ``own`` amounts of each customer's
    earlier charges by (customer, kind, currency), and a :class:`Window` per cross-customer
    (kind, currency), both as read before the batch."""

    own: dict[tuple[str, str, str], list[Decimal]] = field(default_factory=dict)
    across: dict[tuple[str, str], Window] = field(default_factory=dict)

    def assess(self, charge: ChargePosted) -> tuple[Decimal | None, Decimal | None]:
        """The charge's (own, across customers) usual amounts; then count it in for the
        charges after it."""
        amounts = self.own.setdefault((charge.customer_id, charge.kind, charge.currency), [])
        own = statistics.median(amounts) if amounts else None
        amounts.append(charge.amount)
        across = None
        if charge.kind in CROSS_CUSTOMER_KINDS:
            window = self.across.setdefault((charge.kind, charge.currency), Window())
            across = window.median()
            window.add(charge.amount)
        return own, across
