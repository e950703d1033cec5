"""The fast name-based ids are exactly the standard library's UUIDv5."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from services.common.contract.ids import uuid5_str


@given(st.uuids(), st.text())
def test_uuid5_str_is_str_of_uuid5(namespace: uuid.UUID, name: str) -> None:
    assert uuid5_str(namespace, name) == str(uuid.uuid5(namespace, name))
