"""The one scrub for text and the redaction of structured values: the patterns every log
line, stored delivery error and shown error share."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from services.common.contract.events import Customer
from services.common.redact import MAX_DEPTH, MAX_ITEMS, REDACTED, TRUNCATED, redact_value, scrub


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("550 5.1.1 <luis@example.com>: Recipient address rejected",
         "550 5.1.1 <[redacted]>: Recipient address rejected"),
        ("550 no such user root@localhost", "550 no such user [redacted]"),
        ('553 "luis fernando"@example.com refused', "553 [redacted] refused"),
        ("550 <ops@[127.0.0.1]> unknown", "550 <[redacted]> unknown"),
        ("550 josé.pérez@correo.es: mailbox full", "550 [redacted]: mailbox full"),
        ("to a@b.example, c@d.example; done", "to [redacted], [redacted]; done"),
        ("no address here @ all", "no address here @ all"),
    ],
)  # fmt: skip
def test_addresses_are_masked(text: str, expected: str) -> None:
    assert scrub(text) == expected


def test_known_values_are_masked_as_whole_words_in_any_case() -> None:
    text = "550 mailbox of LUIS Fernando full; Luis, Anabel and Ana: 'Tu reembolso' spam"
    masked = scrub(text, known=["Luis Fernando", "Luis", "Ana", "Tu reembolso", ""])
    assert masked == "550 mailbox of [redacted] full; [redacted], Anabel and [redacted]: '[redacted]' spam"


def test_pydantics_quoted_input_is_masked() -> None:
    with pytest.raises(ValidationError) as caught:
        Customer.model_validate({"id": "c-1", "name": "Luis Fernando", "email": "luis at home", "locale": 7})
    masked = scrub(str(caught.value))
    assert "luis at home" not in masked
    assert "input_value=[redacted]" in masked
    assert "email" in masked  # where the fault is stays


def test_values_are_redacted_at_any_depth() -> None:
    value = {"case": {"customer": {"name": "Luis"}, "items": [("Subject", {"SUBJECT": "Hola Luis"})]},
             "note": ["write to luis@example.com"], "count": 3, "ok": True, "none": None}  # fmt: skip
    assert redact_value(value) == {
        "case": {"customer": REDACTED, "items": [("Subject", {"SUBJECT": REDACTED})]},
        "note": ["write to [redacted]"],
        "count": 3,
        "ok": True,
        "none": None,
    }


def test_redaction_is_bounded_in_depth_and_width() -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    deep = redact_value(loop)
    for _ in range(MAX_DEPTH - 1):
        deep = deep["self"]
    assert deep == {"self": TRUNCATED}
    wide = redact_value(list(range(MAX_ITEMS + 5)))
    assert wide == [*range(MAX_ITEMS), TRUNCATED]
    many = redact_value({f"k{i}": i for i in range(MAX_ITEMS + 5)})
    assert len(many) == MAX_ITEMS + 1
    assert many[TRUNCATED] == 5


def test_models_exceptions_and_other_objects_become_scrubbed_text_or_fields() -> None:
    who = Customer(id="c-1", name="Luis", email="luis@example.com", locale="es-CO")
    assert redact_value(who) == {"id": "c-1", "name": REDACTED, "email": REDACTED, "locale": "es-CO"}
    assert redact_value(OSError("refused by luis@example.com")) == "OSError: refused by [redacted]"
    assert redact_value({1, 2}) in ([1, 2], [2, 1])
