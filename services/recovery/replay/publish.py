"""`recoveryctl replay publish`: stored events sent to Kafka again, for a consumer that lost
them, as the relay sent them (the same envelope and key, the customer id) plus the
CloudEvents extension ``replay: true``, which tells consumers with side effects (the
notifier's apologies, billing's refunds) not to act again.

Events go to their contract topic unless a topic is named, in global order, a page at a
time; a page is sent and acknowledged before the next is read. Personal data is sent
opened, as the contract has it; a forgotten customer's reads as erased.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg

from services.common.eventstore.postgres import SELECT_EVENTS, rows_to_events
from services.common.outbox import outbox_message
from services.common.records import to_cloudevent
from services.common.relay import Producer
from services.common.settings import CommonSettings
from services.recovery.application import REGISTRY
from services.recovery.replay.window import Selection


@dataclass
class Published:
    by_type: dict[str, int] = field(default_factory=dict)
    position: int = 0  # the last global position sent

    @property
    def total(self) -> int:
        return sum(self.by_type.values())


async def count(conn: asyncpg.Connection | asyncpg.Pool, selection: Selection) -> dict[str, int]:
    """How many events the selection holds, per type (what ``--dry-run`` shows)."""
    where, args = selection.where(0)
    rows = await conn.fetch(f"SELECT event_type, count(*) FROM events WHERE {where} GROUP BY event_type", *args)
    return {r[0]: int(r[1]) for r in sorted(rows)}


async def publish(
    conn: asyncpg.Connection | asyncpg.Pool,
    producer: Producer,
    settings: CommonSettings,
    selection: Selection,
    *,
    topic: str | None = None,
    page_size: int = 2000,
    on_page: Callable[[int], None] | None = None,
) -> Published:
    """Send the selected events; ``on_page`` gets how many each page sent."""
    done = Published()
    while True:
        where, args = selection.where(done.position)
        args.append(page_size)
        rows = await conn.fetch(f"{SELECT_EVENTS} WHERE {where} ORDER BY global_position LIMIT ${len(args)}", *args)
        if not rows:
            return done
        futures = []
        for recorded in await rows_to_events(conn, rows):
            message = outbox_message(
                to_cloudevent(recorded, replay=True),
                topic or settings.topic(REGISTRY[recorded.event_type].TOPIC),
            )
            futures.append(
                await producer.send(message.topic, message.value, key=message.key, headers=list(message.headers))
            )
            done.by_type[recorded.event_type] = done.by_type.get(recorded.event_type, 0) + 1
        await asyncio.gather(*futures)
        done.position = rows[-1][0]
        if on_page is not None:
            on_page(len(rows))
