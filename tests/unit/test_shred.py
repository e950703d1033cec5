"""Sealing personal data under a customer's key, with no server: a fake connection serves
the key table."""

from __future__ import annotations

import copy
import os
from typing import Any

import orjson

from services.common.eventstore.shred import (
    ERASED,
    ERASED_EMAIL,
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
