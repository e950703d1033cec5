"""One what-if run: read the history (read-only), simulate, add up."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import asyncpg

from services.recovery.domain import Policy, Roster
from services.recovery.whatif.simulate import CaseResult, simulate
from services.recovery.whatif.source import read_history
from services.recovery.whatif.summary import Summary, summarise


@dataclass(frozen=True)
class WhatIf:
    summary: Summary
    results: list[CaseResult]
    events_read: int


async def what_if(
    conn: asyncpg.Connection,
    policy: Policy,
    roster: Roster,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    cost_overrides: Mapping[str, Decimal] | None = None,
    on_read: Callable[[int], None] | None = None,
    on_decided: Callable[[int], None] | None = None,
) -> WhatIf:
    """Re-decide the complaints filed in [since, until) under ``policy`` (read-only)."""
    history = await read_history(conn, since, until, policy.guardrail_window_days, on_read)
    horizon = history.horizon
    results = (
        simulate(history.cases, policy, roster, horizon, history.prior_concessions, on_decided)
        if horizon is not None
        else []
    )
    summary = summarise(results, policy, since=since, until=until, horizon=horizon, cost_overrides=cost_overrides)
    return WhatIf(summary, results, history.events_read)
