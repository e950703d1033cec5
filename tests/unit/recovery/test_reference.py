"""A case's reference: derived from the case id alone, easy to type, hard to mistype."""

from __future__ import annotations

import itertools
import random

import pytest

from services.recovery.domain import case_id_for
from services.recovery.domain.reference import ALPHABET, case_reference, parse_reference, reference_key

from .builders import complaint


def test_references_are_pinned() -> None:
    # Literals computed once, never by the code under test. A reference is printed in the
    # emails customers keep and shown again by every replay: a change to how it is derived
    # breaks both (a customer's reference finds nothing). A failure here is a change to
    # undo, not a literal to update.
    assert case_reference("ec7b8ded-f378-5773-ab31-f242fb416a41") == "RC-XWVA-S9H7-RCDH"
    assert case_reference("case-1") == "RC-Q8H5-Q64N-XBXQ"
    assert case_reference("") == "RC-WERC-8GMR-ZGED"
    assert reference_key("case-1") == 26196061232756093
    assert case_reference(case_id_for(complaint(customer_id="cust-1", charge_id="ch-1"))) == "RC-XWVA-S9H7-RCDH"


def test_a_reference_reads_back_as_its_key_however_it_is_typed() -> None:
    key = reference_key("case-1")
    for typed in ("RC-Q8H5-Q64N-XBXQ", "rc-q8h5-q64n-xbxq", "Q8H5Q64NXBXQ", " rc q8h5 q64n xbxq ", "RCQ8H5-Q64NXBXQ"):
        assert parse_reference(typed) == key, typed


def test_i_l_and_o_read_as_the_digits_they_look_like() -> None:
    # "RC-WERC-8GMR-ZGED" has no 0 or 1; this one does.
    ref = next(r for r in (case_reference(f"c-{n}") for n in range(200)) if "0" in r[3:] and "1" in r[3:])
    typed = ref[:3] + ref[3:].replace("0", "O").replace("1", "l")
    assert parse_reference(typed) == parse_reference(ref) is not None


def test_only_the_unambiguous_alphabet_is_written() -> None:
    assert set(ALPHABET) & set("ILOU") == set()
    refs = [case_reference(f"case-{n}") for n in range(2000)]
    assert {len(r) for r in refs} == {17}
    assert {c for r in refs for c in r[3:].replace("-", "")} <= set(ALPHABET)
    assert all(r.startswith("RC-") and r[7] == "-" and r[12] == "-" for r in refs)


def test_every_single_typo_and_every_swap_of_neighbours_is_caught() -> None:
    rnd = random.Random(7)
    for ref in (case_reference(str(rnd.random())) for _ in range(300)):
        body = ref[3:].replace("-", "")
        for i, c in itertools.product(range(len(body)), ALPHABET):
            if c != body[i]:
                assert parse_reference(body[:i] + c + body[i + 1 :]) is None, (body, i, c)
        for i in range(len(body) - 1):
            if body[i] != body[i + 1]:
                assert parse_reference(body[:i] + body[i + 1] + body[i] + body[i + 2 :]) is None, (body, i)


@pytest.mark.parametrize(
    "text",
    ["", "case-1", "ec7b8ded-f378-5773-ab31-f242fb416a41", "RC-Q8H5-Q64N-XBX", "RC-Q8H5-Q64N-XBXQQ", "Q8H5-Q64N-XBXU"],
)
def test_what_is_not_a_reference_is_none(text: str) -> None:
    assert parse_reference(text) is None


def test_the_example_in_the_docs_is_a_reference_people_can_type() -> None:
    assert parse_reference("RC-7K3F-9QX2-HM4Y") is not None
