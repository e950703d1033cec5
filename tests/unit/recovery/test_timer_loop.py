"""The recovery service's timer loop: a round whose retries all lost races is logged, with
its exception, and the loop fires again at its next tick."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from services.recovery import bootstrap
from services.recovery.errors import RetriesExhausted
from services.recovery.settings import RecoverySettings


async def test_timers_that_kept_losing_races_are_logged_and_fired_at_the_next_tick() -> None:
    runtime = bootstrap.Runtime(RecoverySettings(recovery_timer_poll_s=0.01))
    rounds: list[str] = []

    class Service:
        async def fire_due_timers(self) -> int:
            rounds.append("round")
            if len(rounds) == 1:
                raise RetriesExhausted("", "firing the due timers kept losing races with another instance")
            runtime.stop.set()
            return 0

    runtime.service = Service()  # type: ignore[assignment]
    with capture_logs() as logs:
        await asyncio.wait_for(runtime._timers(), 5)
    assert len(rounds) == 2
    failed = [line for line in logs if line["event"] == "timers.failed"]
    assert [line["error"] for line in failed] == ["RetriesExhausted"]
