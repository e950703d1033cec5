"""Crypto-shredding: customers' personal data in stored events, under a key per customer.

An event of a type in :data:`PERSONAL` is stored with its personal fields (names, emails,
complaint texts, rendered email subjects and bodies, people's notes on a case) replaced by
:func:`erased` markers, and their values in one AES-GCM blob under its customer's key::

    {..., "customer": {"id": "c-1", "name": "[erased]", "email": "erased@erased.invalid"},
     "_sealed": {"c": "c-1", "v": "<base64 of nonce + ciphertext>"}}

Values of :data:`COMPRESS_OVER` bytes or more (a rendered email's text and HTML) are
compressed before they are encrypted, and then stored under ``"z"`` instead of ``"v"``:
base64 makes a ciphertext a third larger than its plain text, which would push an email
request's row over PostgreSQL's TOAST threshold (about 2 kB) and double what storing it costs;
compressed, the sealed row is smaller than the plain one was. A compressed length depends on
how repetitive the values are; a blob holds one event's values of one customer only.

Reading opens the blob and puts the values back. When the key is gone (the customer was
forgotten: ``customer_keys`` row deleted) or no longer the one the blob was sealed under,
the markers stay: the event reads as erased, with its shape, ids and money intact, so that
folding, replaying and the what-if go on. An event stored without ``_sealed`` (by an older
version, or of a type that holds no personal data) reads as it is.

Keys live in ``customer_keys`` (migrations/0008_customer_keys.sql), one row per customer.
A :class:`Keyring` is a transaction's (a batch's) key cache: one query for every customer it
has not seen yet, whatever the number of events and fields.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import asyncpg
import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic_core import from_json

from services.common.eventstore.model import ConcurrencyError, RecordedEvent

SEALED = "_sealed"
ERASED = "[erased]"
ERASED_EMAIL = "erased@erased.invalid"
"""An email address that is valid in form and can never be delivered (RFC 2606)."""
KEY_BYTES = 32
NONCE_BYTES = 12
COMPRESS_OVER = 512
KEYS_STREAM = "customer-keys"

_CUSTOMER = ("customer", "name"), ("customer", "email")
PERSONAL: dict[str, tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]] = {
    # event type: (the path of its customer id, the paths of its personal fields)
    "complaint.filed.v1": (("customer", "id"), (*_CUSTOMER, ("description",))),
    "recovery.case.contact_added.v1": (
        ("complaint", "customer", "id"),
        tuple(("complaint", *p) for p in (*_CUSTOMER, ("description",))),
    ),
    "recovery.decision.made.v1": (("customer", "id"), _CUSTOMER),
    "recovery.case.escalated.v1": (("customer", "id"), _CUSTOMER),
    # No customer id in their data: the envelope's subject, the customer id by the contract
    # (a case's events are recorded with the case's customer as their subject).
    "notification.email.requested.v1": (
        (),
        (("to", "name"), ("to", "email"), ("subject",), ("text",), ("html",)),
    ),
    # People's notes on a case: free text, which may quote the customer.
    "recovery.decision.proposed.v1": ((), (("note",),)),
    "recovery.decision.rejected.v1": ((), (("note",),)),
    "recovery.case.note_added.v1": ((), (("note",),)),
}


def erased(path: Sequence[str]) -> str:
    """The marker that stands for an erased value at ``path``."""
    return ERASED_EMAIL if path[-1] == "email" else ERASED


# Each type's personal paths, walked by a function of its own, made once at import from
# PERSONAL (as services/common/contract/construct.py makes constructors): it copies the dicts
# on the way to a personal value, puts the markers in, and returns the copy with the values
# in PERSONAL's order, or None when none is personal (absent, None or a marker already). A
# generic walk over the paths costs about twice as much, on every sealed event.
_Strip = Callable[[dict[str, Any]], tuple[dict[str, Any], list[Any], Any] | None]


def _stripper(customer: Sequence[str], paths: Sequence[Sequence[str]]) -> _Strip:
    """The function that strips a type's data: (the copy, the values, the customer id at
    ``customer`` in the data, unchecked: None for a type whose data does not name one)."""
    lines = ["def strip(data):", "    out = dict(data)"]
    lines += [f"    v{i} = None" for i in range(len(paths))]
    names = iter(range(1_000))

    def walk(indices: Sequence[int], at: int, src: str, dst: str, indent: str) -> None:
        heads: dict[str, list[int]] = {}
        for i in indices:
            if len(paths[i]) == at + 1:
                key = paths[i][at]
                lines.append(f"{indent}v{i} = {src}.get({key!r})")
                lines.append(f"{indent}if v{i} is not None: {dst}[{key!r}] = {erased(paths[i])!r}")
            else:
                heads.setdefault(paths[i][at], []).append(i)
        for key, below in heads.items():
            n = next(names)
            lines.append(f"{indent}s{n} = {src}.get({key!r})")
            lines.append(f"{indent}if isinstance(s{n}, dict):")
            lines.append(f"{indent}    d{n} = {dst}[{key!r}] = dict(s{n})")
            walk(below, at + 1, f"s{n}", f"d{n}", indent + "    ")

    walk(range(len(paths)), 0, "data", "out", "    ")
    held = " or ".join(f"(v{i} is not None and v{i} != {erased(p)!r})" for i, p in enumerate(paths))
    lines.append(f"    if not ({held}): return None")
    lines.append("    c = data")
    for part in customer:
        lines.append(f"    c = c.get({part!r}) if isinstance(c, dict) else None")
    lines.append(f"    return out, [{', '.join(f'v{i}' for i in range(len(paths)))}], {'c' if customer else 'None'}")
    env: dict[str, Any] = {}
    exec(compile("\n".join(lines), "<personal data stripper>", "exec"), env)  # noqa: S102 - from PERSONAL's paths
    made: _Strip = env["strip"]
    return made


_STRIPPERS: dict[str, _Strip] = {t: _stripper(*where) for t, where in PERSONAL.items()}


def holds_personal(event_type: str, data: dict[str, Any]) -> bool:
    """Whether ``data`` holds a personal value to seal: not when every personal field is
    absent (a decision proposed without a note) or an erased marker already (a decision
    made after its customer was forgotten, which must not give them a key again). The
    type's stripping function decides it, as it does when an event is sealed."""
    return _STRIPPERS[event_type](data) is not None


def _get(data: dict[str, Any], path: Sequence[str]) -> Any:
    value: Any = data
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _set(data: dict[str, Any], path: Sequence[str], value: Any) -> None:
    target: Any = data
    for part in path[:-1]:
        target = target.get(part)
        if not isinstance(target, dict):
            return
    target[path[-1]] = value


def customer_of(event_type: str, data: dict[str, Any], metadata: dict[str, Any]) -> str | None:
    """The customer whose personal data the event holds (None: none it could be sealed for)."""
    where = PERSONAL.get(event_type)
    if where is None:
        return None
    return _customer(_get(data, where[0]) if where[0] else metadata.get("subject"))


def _customer(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class Stripped:
    """An event's data with its personal values taken out (:func:`strip`), to be sealed
    under its customer's key (:meth:`Keyring.seal_stripped`)."""

    __slots__ = ("customer", "data", "event_type", "values")

    def __init__(self, event_type: str, data: dict[str, Any], values: list[Any], customer: str) -> None:
        self.event_type, self.data, self.values, self.customer = event_type, data, values, customer


def strip(event_type: str, data: dict[str, Any], customer: str) -> Stripped | None:
    """``data`` of a type in :data:`PERSONAL` with its personal values taken out, or None
    when :func:`holds_personal` finds none; ``data`` itself is left as it is."""
    taken = _STRIPPERS[event_type](data)
    return None if taken is None else Stripped(event_type, taken[0], taken[1], customer)


def strip_event(event_type: str, data: dict[str, Any], metadata_json: str) -> Stripped | None:
    """:func:`strip` with the event's customer found as :func:`customer_of` finds it (its
    metadata, JSON text, parsed only for a type whose data does not name its customer);
    None also when the event names no customer to seal it for."""
    taken = _STRIPPERS[event_type](data)
    if taken is None:
        return None
    customer = _customer(taken[2] if PERSONAL[event_type][0] else orjson.loads(metadata_json).get("subject"))
    return None if customer is None else Stripped(event_type, taken[0], taken[1], customer)


_ENSURE = (
    "WITH ins AS (INSERT INTO customer_keys (customer_id, key)"
    " SELECT * FROM unnest($1::text[], $2::bytea[]) ON CONFLICT (customer_id) DO NOTHING"
    " RETURNING customer_id, key)"
    " SELECT customer_id, key FROM ins"
    " UNION ALL SELECT customer_id, key FROM customer_keys WHERE customer_id = ANY($1::text[])"
)
_FETCH = "SELECT customer_id, key FROM customer_keys WHERE customer_id = ANY($1::text[])"


class Keyring:
    """The keys a transaction (a batch) has read or made, by customer: each customer's key
    is looked up once, with every other customer not seen yet, in one query."""

    __slots__ = ("_absent", "_ciphers")

    def __init__(self) -> None:
        self._ciphers: dict[str, AESGCM] = {}
        self._absent: set[str] = set()  # looked up, no key: erased (or never given one)

    async def load(self, conn: asyncpg.Connection | asyncpg.Pool, customers: Iterable[str]) -> None:
        """Read the keys of ``customers`` not looked up yet."""
        missing = [c for c in set(customers) if c not in self._ciphers and c not in self._absent]
        if not missing:
            return
        for r in await conn.fetch(_FETCH, missing):
            self._ciphers[r[0]] = AESGCM(bytes(r[1]))
        self._absent.update(c for c in missing if c not in self._ciphers)

    async def ensure(self, conn: asyncpg.Connection, customers: Iterable[str]) -> None:
        """Read the keys of ``customers``, making those they do not have yet (within the
        caller's transaction)."""
        missing = [c for c in set(customers) if c not in self._ciphers]
        if not missing:
            return
        fresh = os.urandom(KEY_BYTES * len(missing))
        rows = await conn.fetch(_ENSURE, missing, [fresh[i : i + KEY_BYTES] for i in range(0, len(fresh), KEY_BYTES)])
        for r in rows:
            self._ciphers[r[0]] = AESGCM(bytes(r[1]))
            self._absent.discard(r[0])
        lost = [c for c in missing if c not in self._ciphers]
        if lost:
            # Another transaction gave one of them a key after this statement's snapshot:
            # the caller's transaction is tried again on fresh state.
            raise ConcurrencyError(KEYS_STREAM, 0, 1)

    def seal(self, event_type: str, data: dict[str, Any], customer: str) -> dict[str, Any]:
        """A copy of ``data`` with its personal fields sealed under ``customer``'s key (which
        :meth:`ensure` made sure of), or ``data`` when :func:`holds_personal` finds none;
        ``data`` itself is left as it is."""
        stripped = strip(event_type, data, customer)
        return data if stripped is None else self.seal_stripped(stripped)

    def seal_stripped(self, stripped: Stripped, nonce: bytes | None = None) -> dict[str, Any]:
        """The stripped data with its values sealed in a blob under its customer's key
        (``nonce``: a fresh random one, :data:`NONCE_BYTES` long; made here if not given)."""
        plain = _dumps(stripped.values)
        form = "v"
        if len(plain) >= COMPRESS_OVER:
            plain, form = _deflate(plain), "z"
        nonce = os.urandom(NONCE_BYTES) if nonce is None else nonce
        customer = stripped.customer
        blob = self._ciphers[customer].encrypt(nonce, plain, _aad(stripped.event_type, customer, form))
        sealed = stripped.data
        sealed[SEALED] = {"c": customer, form: binascii.b2a_base64(nonce + blob, newline=False).decode()}
        return sealed

    def seal_all(self, stripped: Sequence[Stripped]) -> list[dict[str, Any]]:
        """:meth:`seal_stripped` for each, their nonces drawn from the system's random
        source in one call."""
        nonces = os.urandom(NONCE_BYTES * len(stripped))
        return [self.seal_stripped(s, nonces[i * NONCE_BYTES : (i + 1) * NONCE_BYTES]) for i, s in enumerate(stripped)]

    def open(self, event_type: str, data: dict[str, Any]) -> None:
        """Put the sealed values of ``data`` back in place (in place), or leave the erased
        markers when the customer's key is gone; drop the blob either way."""
        box = data.pop(SEALED, None)
        if not isinstance(box, dict):
            return
        where = PERSONAL.get(event_type)
        cipher = self._ciphers.get(str(box.get("c")))
        if where is None or cipher is None:
            return
        form = "z" if "z" in box else "v"
        raw = base64.b64decode(str(box.get(form, "")))
        try:
            plain = cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(event_type, str(box["c"]), form))
        except (InvalidTag, ValueError):
            return  # sealed under a key since destroyed: the customer was forgotten
        if form == "z":
            plain = zlib.decompress(plain, -zlib.MAX_WBITS)
        for path, value in zip(where[1], from_json(plain), strict=False):
            if value is not None:
                _set(data, path, value)


def _dumps(values: list[Any]) -> bytes:
    # orjson refuses what JSON allows but it does not (an integer beyond 64 bits): those take
    # the standard library's encoder, and opening parses with pydantic-core, which keeps them.
    try:
        return orjson.dumps(values)
    except TypeError:
        return json.dumps(values, separators=(",", ":")).encode()


def _deflate(plain: bytes) -> bytes:
    # Raw deflate, fastest level, a 2 kB window and little memory: setting up zlib's default
    # state costs more than compressing an email (about 25 us against 11 us here), and an
    # email's repeats (its text and HTML) lie within a window this size.
    z = zlib.compressobj(1, zlib.DEFLATED, -11, 4)
    return z.compress(plain) + z.flush()


def _aad(event_type: str, customer: str, form: str) -> bytes:
    # Binds a blob to its event type, customer and form: moved elsewhere, or its form
    # relabelled, it does not open. The uncompressed form keeps the binding it always had.
    return f"{event_type}\x1f{customer}{'' if form == 'v' else chr(0x1F) + form}".encode()


def sealed_customers(data: Iterable[dict[str, Any]]) -> set[str]:
    """The customers whose keys opening ``data`` needs."""
    out: set[str] = set()
    for d in data:
        box = d.get(SEALED)
        if isinstance(box, dict):
            out.add(str(box.get("c")))
    return out


def read_as_erased(data: Iterable[dict[str, Any]]) -> None:
    """Drop the sealed blobs of ``data`` in place, leaving the erased markers: the data reads
    as if every customer had been forgotten, with no key read and nothing decrypted. For a
    reader that needs no personal data and must not hold it (the what-if)."""
    for d in data:
        d.pop(SEALED, None)


async def open_events(
    conn: asyncpg.Connection | asyncpg.Pool, events: Sequence[RecordedEvent], keys: Keyring | None = None
) -> None:
    """Open the sealed personal data of ``events`` in place (see :class:`Keyring`)."""
    await open_data(conn, [(e.event_type, e.data) for e in events], keys)


async def open_data(
    conn: asyncpg.Connection | asyncpg.Pool,
    items: Sequence[tuple[str, dict[str, Any]]],
    keys: Keyring | None = None,
) -> None:
    """Open the sealed personal data of each (event type, data) in place, the keys read in
    one query (none when nothing is sealed)."""
    customers = sealed_customers(d for _, d in items)
    if not customers:
        return
    keys = keys if keys is not None else Keyring()
    await keys.load(conn, customers)
    for event_type, data in items:
        if SEALED in data:
            keys.open(event_type, data)
