"""A case's reference: a short code people can read out, type and print (``RC-7K3F-9QX2-HM4Y``).

It is derived from the case id alone, so a replay, a what-if and every instance give a case
the same reference, and an apology printed years ago still names the case. It is not an id:
the case id stays the key; the reference is looked up through an index (migration
``0107_case_references.sql``), and a lookup that finds two cases says so.

How it is made, which nothing may change (emails carry it):

- The key: the first 55 bits of SHA-256 over the case id's UTF-8 bytes. With a million
  cases in one store the chance that any two share a key is about 1 in 70,000 (the
  birthday bound n²/2⁵⁶).
- The text: ``RC-``, then the key in Crockford's base32 (11 characters, no I, L, O or U,
  so nothing reads as another character), then one check character, in groups of four.
- The check character: Damm's algorithm over the same 32 symbols, with the quasigroup
  ``a ∘ b = 2a + b`` in GF(32) (modulus x⁵ + x² + 1). It catches every single wrong
  character and every swap of two neighbours.

Reading one back forgives what people do: lower case, missing or extra hyphens and spaces,
no ``RC-``, and I or L for 1 and O for 0.
"""

from __future__ import annotations

import hashlib

PREFIX = "RC"
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base32: no I, L, O, U
KEY_BITS = 55
_BODY = KEY_BITS // 5  # 11 characters of key
_VALUE = {c: i for i, c in enumerate(ALPHABET)} | {"I": 1, "L": 1, "O": 0}
_GF32_MODULUS = 0b100101  # x^5 + x^2 + 1, irreducible over GF(2)


def reference_key(case_id: str) -> int:
    """The number a case's reference spells: the first 55 bits of SHA-256 of its id."""
    # SHA-256 spreads ids evenly over the keys; it is not used for security.
    digest = hashlib.sha256(case_id.encode()).digest()
    return int.from_bytes(digest[:7], "big") >> (56 - KEY_BITS)


def case_reference(case_id: str) -> str:
    """The case's reference, ``RC-XXXX-XXXX-XXXX``."""
    return spell(reference_key(case_id))


def spell(key: int) -> str:
    """The reference that spells ``key`` (55 bits), with its check character."""
    digits = [(key >> (5 * i)) & 31 for i in reversed(range(_BODY))]
    text = "".join(ALPHABET[d] for d in [*digits, _check(digits)])
    return f"{PREFIX}-{text[0:4]}-{text[4:8]}-{text[8:12]}"


def parse_reference(text: str) -> int | None:
    """The key ``text`` spells if it is a case reference with a right check character, else
    None (not one, or one with a typo in it)."""
    compact = "".join(text.split()).replace("-", "").upper()
    if len(compact) == _BODY + 1 + len(PREFIX) and compact.startswith(PREFIX):
        compact = compact[len(PREFIX) :]
    if len(compact) != _BODY + 1 or any(c not in _VALUE for c in compact):
        return None
    digits = [_VALUE[c] for c in compact]
    if _check(digits[:-1]) != digits[-1]:
        return None
    key = 0
    for d in digits[:-1]:
        key = (key << 5) | d
    return key


def _times_two(a: int) -> int:
    """``a`` times x in GF(32)."""
    a <<= 1
    return a ^ _GF32_MODULUS if a & 32 else a


def _check(digits: list[int]) -> int:
    """Damm's check digit: the one that brings the interim value back to 0."""
    interim = 0
    for d in digits:
        interim = _times_two(interim) ^ d
    return _times_two(interim)
