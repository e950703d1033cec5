"""The pure pieces of `replay`: window bounds, the types a re-publication may carry, the SQL
condition of a selection, and the page and segment cuts of a rebuild."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.common.contract.events import ChargePosted, ChargeRefunded
from services.recovery.application import ACCEPTED, REGISTRY
from services.recovery.replay.fold import types_for, whole_transactions
from services.recovery.replay.rebuild import RebuildError, parse_projections
from services.recovery.replay.window import Bound, SelectionError, parse_bound, publishable, select

T = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def test_a_bound_is_a_global_position_a_date_at_midnight_utc_or_a_zoned_time() -> None:
    assert parse_bound("1200") == Bound(position=1200)
    assert parse_bound("2026-11-20") == Bound(time=datetime(2026, 11, 20, tzinfo=UTC))
    assert parse_bound("2026-11-20T09:00:00Z") == Bound(time=T)
    assert parse_bound("2026-11-20T10:00:00+01:00").time == T


@pytest.mark.parametrize("text", ["2026-11-20T09:00:00", "yesterday", "-5", "12a"])
def test_a_bound_without_zone_or_sense_is_refused(text: str) -> None:
    with pytest.raises(SelectionError):
        parse_bound(text)


def test_by_default_only_what_the_service_publishes_is_re_published() -> None:
    types = publishable(REGISTRY, ACCEPTED)
    assert "recovery.decision.made.v1" in types
    assert "recovery.case.opened.v1" in types
    assert "recovery.charge.flagged.v1" in types
    assert {REGISTRY[t].TOPIC for t in types} == {"decisions"}  # not internal, not the notifier's
    assert "notification.email.requested.v1" not in types
    assert not set(types) & ACCEPTED


def test_internal_and_unknown_types_are_refused_and_inputs_need_a_topic() -> None:
    with pytest.raises(SelectionError, match="internal"):
        select(registry=REGISTRY, inputs=ACCEPTED, types=["recovery.case.contact_added.v1"])
    with pytest.raises(SelectionError, match="unknown"):
        select(registry=REGISTRY, inputs=ACCEPTED, types=["nope.v1"])
    with pytest.raises(SelectionError, match="--topic"):
        select(registry=REGISTRY, inputs=ACCEPTED, types=[ChargePosted.TYPE])
    chosen = select(registry=REGISTRY, inputs=ACCEPTED, types=[ChargePosted.TYPE], topic="elsewhere")
    assert chosen.types == (ChargePosted.TYPE,)


def test_a_window_must_not_end_before_it_starts() -> None:
    with pytest.raises(SelectionError, match="after"):
        select(registry=REGISTRY, inputs=ACCEPTED, start="10", end="10")
    with pytest.raises(SelectionError, match="after"):
        select(registry=REGISTRY, inputs=ACCEPTED, start="2026-11-21", end="2026-11-20")


def test_the_selection_becomes_one_sql_condition_with_numbered_arguments() -> None:
    s = select(registry=REGISTRY, inputs=ACCEPTED, types=["recovery.decision.made.v1"], start="5", end="2026-11-21",
               customer="cust-1")  # fmt: skip
    where, args = s.where(0)
    assert where == (
        "global_position > $1 AND event_type = ANY($2::text[]) AND occurred_at < $3 AND metadata->>'subject' = $4"
    )
    assert args == [4, ["recovery.decision.made.v1"], datetime(2026, 11, 21, tzinfo=UTC), "cust-1"]
    # paging on: a later page starts after the last position sent
    assert s.where(40)[1][0] == 40
    t = select(registry=REGISTRY, inputs=ACCEPTED, start="2026-11-20", end="90")
    assert t.where(0)[0].endswith("global_position < $3 AND occurred_at >= $4")


def test_projection_names_are_checked_and_default_to_all() -> None:
    assert parse_projections(None) == {"cases", "charges", "concessions"}
    assert parse_projections(["charges"]) == {"charges"}
    with pytest.raises(RebuildError, match="unknown projection"):
        parse_projections(["timers"])
    assert set(types_for(frozenset({"charges"}))) == {ChargePosted.TYPE, ChargeRefunded.TYPE}


def _row(pos: int, tx: datetime) -> tuple[object, ...]:
    return (pos, "s", 1, "t", "{}", tx, tx)


def test_a_full_page_ends_where_a_transaction_ended() -> None:
    a, b = T, T + timedelta(seconds=1)
    rows = [_row(1, a), _row(2, a), _row(3, b), _row(4, b)]
    assert whole_transactions(rows) == rows[:2]
    one_big = [_row(1, a), _row(2, a)]
    assert whole_transactions(one_big) == []  # the caller reads on to the end of it
