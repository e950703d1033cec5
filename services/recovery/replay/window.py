"""What `replay publish` selects, parsed and checked without I/O: the window (times or
global positions, from inclusive, to exclusive), the event types and the customer.

Errors: :class:`SelectionError`, with a message for the command line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from services.common.contract import EventData

INTERNAL = "internal"


class SelectionError(ValueError):
    """The options do not describe a selection; the message says why."""


@dataclass(frozen=True)
class Bound:
    """One end of the window: a global position or a time (exactly one is set)."""

    position: int | None = None
    time: datetime | None = None


def parse_bound(text: str) -> Bound:
    """``1200`` (a global position), ``2026-11-20`` (midnight UTC) or an RFC 3339 time with
    a zone (``2026-11-20T09:00:00Z``, ``...+01:00``)."""
    text = text.strip()
    if text.isdigit():
        return Bound(position=int(text))
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return Bound(time=datetime(day.year, day.month, day.day, tzinfo=UTC))
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise SelectionError(f"{text!r} is neither a global position nor a date or time") from None
    if moment.tzinfo is None:
        raise SelectionError(f"{text!r} has no time zone: add Z or an offset such as +01:00")
    return Bound(time=moment)


@dataclass(frozen=True)
class Selection:
    """Stored events to re-publish: ``from_position <= global_position < to_position``,
    ``since <= occurred_at < until``, of ``types``, of one customer (the CloudEvents subject)."""

    types: tuple[str, ...]
    from_position: int | None = None
    to_position: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    customer: str | None = None

    def where(self, after_position: int) -> tuple[str, list[object]]:
        """The SQL condition and its arguments, for events after ``after_position``."""
        args: list[object] = [max(after_position, (self.from_position or 1) - 1), list(self.types)]
        clauses = ["global_position > $1", "event_type = ANY($2::text[])"]
        for value, clause in (
            (self.to_position, "global_position < ${}"),
            (self.since, "occurred_at >= ${}"),
            (self.until, "occurred_at < ${}"),
            (self.customer, "metadata->>'subject' = ${}"),
        ):
            if value is not None:
                args.append(value)
                clauses.append(clause.format(len(args)))
        return " AND ".join(clauses), args


OWN_TOPIC = "decisions"


def publishable(registry: Mapping[str, type[EventData]], inputs: frozenset[str]) -> tuple[str, ...]:
    """The types re-published by default: those the recovery service publishes, to
    ``recovery.decisions``. Not internal types, not its inputs (they belong to the systems
    that sent them), nor the notifier's events that share the store (the email requests and
    their outcomes): those only when named with ``--type``."""
    return tuple(sorted(t for t, m in registry.items() if m.TOPIC == OWN_TOPIC and t not in inputs))


def select(
    *,
    registry: Mapping[str, type[EventData]],
    inputs: frozenset[str],
    types: Sequence[str] = (),
    start: str | None = None,
    end: str | None = None,
    customer: str | None = None,
    topic: str | None = None,
) -> Selection:
    """The selection the command line's options describe, or :class:`SelectionError`."""
    chosen = tuple(dict.fromkeys(types)) or publishable(registry, inputs)
    for t in chosen:
        model = registry.get(t)
        if model is None:
            raise SelectionError(f"unknown event type {t!r}")
        if model.TOPIC == INTERNAL:
            raise SelectionError(f"{t} is internal to the recovery service and never published")
        if t in inputs and topic is None:
            raise SelectionError(f"{t} is an input of the recovery service: name a --topic to send it elsewhere")
    lo = parse_bound(start) if start else Bound()
    hi = parse_bound(end) if end else Bound()
    if lo.position is not None and hi.position is not None and hi.position <= lo.position:
        raise SelectionError("--to must be after --from")
    if lo.time is not None and hi.time is not None and hi.time <= lo.time:
        raise SelectionError("--to must be after --from")
    if customer is not None and not customer.strip():
        raise SelectionError("--customer needs an id")
    return Selection(chosen, lo.position, hi.position, lo.time, hi.time, customer)
