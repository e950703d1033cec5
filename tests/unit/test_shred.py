"""Sealing personal data under a customer's key, with no server: a fake connection serves
the key table."""

from __future__ import annotations

import asyncio
import copy
import os
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from services.common.eventstore.shred import (
    ERASED,
    ERASED_EMAIL,
    PERSONAL,
    SEALED,
    Keyring,
    customer_of,
    holds_personal,
    open_data,
)

DECISION = "recovery.decision.made.v1"
EMAIL = "notification.email.requested.v1"
DATA = {"case_id": "k-1", "customer": {"id": "c-1", "name": "Ana Privada", "email": "ana@example.com"},
        "remedies": [{"type": "refund", "amount": "4.99", "currency": "USD"}]}  # fmt: skip


class _Keys:
    """The customer_keys table: ``fetch`` answers both the ensure and the lookup queries."""

    def __init__(self) -> None:
        self.rows: dict[str, bytes] = {}
        self.queries = 0

    async def fetch(self, sql: str, ids: list[str], keys: list[bytes] | None = None) -> list[tuple[str, bytes]]:
        self.queries += 1
        if keys is not None:
            for c, k in zip(ids, keys, strict=True):
                self.rows.setdefault(c, k)
        return [(c, self.rows[c]) for c in ids if c in self.rows]


async def test_sealed_data_opens_with_the_key_and_reads_as_erased_without_it() -> None:
    table, ring = _Keys(), Keyring()
    await ring.ensure(table, ["c-1"])
    sealed = ring.seal(DECISION, DATA, "c-1")
    assert DATA["customer"]["name"] == "Ana Privada"  # type: ignore[index]  # the original is left alone
    assert sealed["customer"] == {"id": "c-1", "name": ERASED, "email": ERASED_EMAIL}
    assert sealed["remedies"] == DATA["remedies"]
    opened = copy.deepcopy(sealed)
    await open_data(table, [(DECISION, opened)])
    assert opened == DATA
    del table.rows["c-1"]  # forgotten
    gone = copy.deepcopy(sealed)
    await open_data(table, [(DECISION, gone)])
    assert gone == {**DATA, "customer": {"id": "c-1", "name": ERASED, "email": ERASED_EMAIL}}
    table.rows["c-1"] = os.urandom(32)  # a new key for the same customer opens nothing old
    again = copy.deepcopy(sealed)
    await open_data(table, [(DECISION, again)])
    assert again["customer"]["name"] == ERASED
    assert SEALED not in again


async def test_one_lookup_a_batch_and_unsealed_events_read_as_they_are() -> None:
    table, ring = _Keys(), Keyring()
    await ring.ensure(table, ["c-1", "c-2"])
    await ring.ensure(table, ["c-1", "c-2"])
    assert table.queries == 1
    items: list[tuple[str, dict[str, Any]]] = [(DECISION, ring.seal(DECISION, DATA, "c-1")) for _ in range(50)]
    items.append((DECISION, copy.deepcopy(DATA)))  # stored by an older version
    reader = _Keys()
    reader.rows = table.rows
    await open_data(reader, items)
    assert reader.queries == 1
    assert all(d == DATA for _, d in items)


def test_the_customer_of_an_event() -> None:
    assert customer_of(DECISION, DATA, {}) == "c-1"
    assert customer_of("notification.email.requested.v1", {}, {"subject": "c-9"}) == "c-9"
    assert customer_of("recovery.case.opened.v1", DATA, {}) is None


async def test_a_long_email_is_compressed_before_it_is_sealed_and_its_form_is_bound() -> None:
    table, ring = _Keys(), Keyring()
    await ring.ensure(table, ["c-1"])
    email = {"notification_id": "n-1", "to": {"name": "Ana Privada", "email": "ana@example.com"},
             "subject": "We are sorry", "text": "Dear Ana Privada, " * 100,
             "html": "<p>Dear Ana Privada</p>" * 100}  # fmt: skip
    sealed = ring.seal(EMAIL, email, "c-1")
    assert set(sealed[SEALED]) == {"c", "z"}
    assert len(orjson.dumps(sealed)) < len(orjson.dumps(email)) / 2
    assert b"Ana" not in orjson.dumps(sealed)
    opened = copy.deepcopy(sealed)
    await open_data(table, [(EMAIL, opened)])
    assert opened == email
    relabelled = copy.deepcopy(sealed)
    relabelled[SEALED]["v"] = relabelled[SEALED].pop("z")  # the form is bound: it does not open
    await open_data(table, [(EMAIL, relabelled)])
    assert relabelled["text"] == ERASED
    short = ring.seal(DECISION, DATA, "c-1")
    assert set(short[SEALED]) == {"c", "v"}  # a name and an email: not worth compressing


def test_notes_are_personal_and_nothing_to_seal_is_left_as_it_is() -> None:
    note = {"case_id": "k-1", "by": "agent:maria", "note": "she rang twice", "noted_at": "2026-03-04T15:00:00Z"}
    assert customer_of("recovery.case.note_added.v1", note, {"subject": "c-1"}) == "c-1"  # the case's customer
    assert holds_personal("recovery.case.note_added.v1", note)
    # A proposal without a note, and a decision made after the customer was forgotten: the
    # markers are not sealed (and so make no key for a forgotten customer).
    assert not holds_personal("recovery.decision.proposed.v1", {"case_id": "k-1", "proposed_by": "agent:maria"})
    erased = {**DATA, "customer": {"id": "c-1", "name": ERASED, "email": ERASED_EMAIL}}
    assert not holds_personal(DECISION, erased)
    assert holds_personal(DECISION, DATA)
    ring = Keyring()
    assert ring.seal(DECISION, erased, "c-1") is erased  # no key needed


_VALUE = st.one_of(st.none(), st.text(max_size=20), st.integers(), st.just(ERASED), st.just(ERASED_EMAIL))


@st.composite
def _event_data(draw: st.DrawFn, event_type: str) -> dict[str, Any]:
    """Data of ``event_type`` with each personal path present or not, its value anything a
    producer could send (an erased marker too), and a dict on the way now and then not one."""
    data: dict[str, Any] = {"other": draw(st.text(max_size=5))}
    for path in PERSONAL[event_type][1]:
        if not draw(st.booleans()):
            continue
        target = data
        for part in path[:-1]:
            inner = target.setdefault(part, {} if draw(st.integers(0, 9)) else "not a dict")
            if not isinstance(inner, dict):
                break
            inner.setdefault("kept", 1)
            target = inner
        else:
            target[path[-1]] = draw(_VALUE)
    return data


@given(st.data())
def test_sealing_any_shape_of_personal_data_opens_back_to_it(drawn: st.DataObject) -> None:
    event_type = drawn.draw(st.sampled_from(sorted(PERSONAL)))
    data = drawn.draw(_event_data(event_type))
    before = copy.deepcopy(data)
    table, ring = _Keys(), Keyring()
    asyncio.run(ring.ensure(table, ["c-1"]))
    sealed = ring.seal(event_type, data, "c-1")
    assert data == before  # the original is left alone
    if not holds_personal(event_type, data):
        assert sealed is data
        return
    left = {k: v for k, v in sealed.items() if k not in (SEALED, "other")}
    for path in PERSONAL[event_type][1]:
        value = _at(data, path)
        if value is not None:
            assert _at(sealed, path) == (ERASED_EMAIL if path[-1] == "email" else ERASED)
    # Nothing personal is left in the clear, but markers and what is not personal.
    assert _leaves(left) <= {ERASED, ERASED_EMAIL, 1, None}
    opened = copy.deepcopy(sealed)
    asyncio.run(open_data(table, [(event_type, opened)]))
    assert opened == data


def _leaves(data: Any) -> set[Any]:
    if isinstance(data, dict):
        return set().union(*map(_leaves, data.values())) if data else set()
    return {data} if data != "not a dict" else set()


def _at(data: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data
