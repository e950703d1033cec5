"""Name-based ids (UUID version 5), computed without building ``uuid.UUID`` objects.

Every derived id in the system (cases, events caused by a message, notifications) is a
UUIDv5 of a namespace and a name, so two instances, a replay and a what-if agree on it.
:func:`uuid5_str` returns exactly ``str(uuid.uuid5(namespace, name))`` (a test checks it)
in about a fifth of the time: these ids are computed several times per complaint.
"""

from __future__ import annotations

import uuid
from hashlib import sha1


def uuid5_str(namespace: uuid.UUID, name: str) -> str:
    """``str(uuid.uuid5(namespace, name))``, faster."""
    # SHA-1 is what RFC 4122 prescribes for version 5 ids; it is not used for security.
    digest = bytearray(sha1(namespace.bytes + name.encode(), usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
