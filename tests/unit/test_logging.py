"""Log lines: exceptions with their message and traceback, personal data and secrets masked
everywhere (at any depth, in the formatted exception, in the standard library's lines), ids
bound per message."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from pydantic import SecretStr

from services.common.clock import ManualClock
from services.common.contract.events import ComplaintFiled, Customer
from services.common.kafka import decode_batch
from services.common.logging import configure_logging, secrets_of
from services.common.records import InboundRecord
from services.common.redact import scrub, set_secrets
from services.common.settings import CommonSettings
from services.recovery.adapters.memory import MemoryUnitOfWork
from services.recovery.application import RecoveryService
from services.recovery.domain.policy import load_policy
from services.recovery.domain.roster import load_roster
from services.recovery.settings import RecoverySettings
from tests.helpers import VOUCHERS
from tests.replay_world import T0, charge, complaint, records

SECRET = "s3cret-database-password"
TOKEN = "ops-token-7c1e9a04b2d85f36e0a9d41b6c"


@pytest.fixture
def lines() -> Iterator[Any]:
    """The service's JSON logging, into a buffer; the lines logged so far, parsed."""
    saved = structlog.get_config()
    configure_logging("INFO", "json", secrets=[SECRET])
    out = io.StringIO()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=out))

    def read() -> list[dict[str, Any]]:
        return [json.loads(line) for line in out.getvalue().splitlines()]

    yield read
    structlog.configure(**saved)
    set_secrets(())


def _fail() -> None:
    raise ValueError(f"could not reach postgresql://svc:{SECRET}@db/x for luis@example.com")


def test_an_exception_is_logged_with_its_message_and_traceback_masked(lines: Any) -> None:
    log = structlog.get_logger("t")
    try:
        _fail()
    except ValueError:
        log.error("thing.failed", exc_info=True)
    (line,) = lines()
    assert "Traceback" in line["exception"]
    assert "_fail" in line["exception"]
    assert "could not reach" in line["exception"]
    assert SECRET not in json.dumps(line)
    assert "luis@example.com" not in json.dumps(line)
    assert "[redacted]" in line["exception"]


def test_a_warning_with_an_error_inside_an_except_block_carries_the_exception(lines: Any) -> None:
    log = structlog.get_logger("t")
    try:
        _fail()
    except ValueError as exc:
        log.warning("thing.retry", error=type(exc).__name__)
    log.warning("no.exception", error="none in hand")
    first, second = lines()
    assert "ValueError: could not reach" in first["exception"]
    assert "exception" not in second


def test_personal_keys_and_addresses_in_any_value_are_masked(lines: Any) -> None:
    structlog.get_logger("t").info("x", email="a@b.example", note="write to ana@example.org", to="x@y.example")
    (line,) = lines()
    assert line["email"] == line["to"] == "[redacted]"
    assert line["note"] == "write to [redacted]"


def test_the_settings_secrets_are_known_with_a_urls_password() -> None:
    settings = RecoverySettings(database_url=SecretStr(f"postgresql://svc:{SECRET}@db:5432/x"),
                                ops_api_token=SecretStr(TOKEN))  # fmt: skip
    found = secrets_of(settings)
    assert SECRET in found
    assert TOKEN in found
    set_secrets(found)
    try:
        assert scrub(f"password {SECRET} refused") == "password [redacted] refused"
    finally:
        set_secrets(())


async def test_a_line_logged_while_a_message_is_handled_names_the_message_and_its_case(lines: Any) -> None:
    log = structlog.get_logger("t")

    async def pace() -> None:  # awaited while each message is in hand
        log.info("handling")

    service = RecoveryService(None, CommonSettings(), load_policy(), load_roster(), ManualClock(T0),
                              vouchers=VOUCHERS, uow=MemoryUnitOfWork(), pace=pace)  # fmt: skip
    filed = complaint("cu-1", "cmp-1", "delivery_failed", T0, charge_id="ch-1")
    posted = charge("cu-1", "ch-1", "4.99", "purchase", "digital", T0)
    await service.handle_records(records([posted, filed]))
    log.info("after")
    # Once per message (and while loading the batch's state, before any is in hand).
    handling = [line for line in lines() if "event_id" in line or line["event"] == "after"]
    on_charge, on_complaint, after = handling
    assert on_charge["event_id"] == posted["id"]
    assert on_charge["charge_id"] == "ch-1"
    assert on_charge["batch_records"] == 2
    assert on_complaint["event_id"] == filed["id"]
    assert on_complaint["correlation_id"] == "cmp-1"
    assert on_complaint["case_id"] == "e2d751d2-8a76-50f2-8d26-e9be1ad57821"  # cu-1's ch-1, pinned
    assert not {"event_id", "case_id", "correlation_id", "batch_records"} & after.keys()


def test_personal_keys_are_masked_at_any_depth(lines: Any) -> None:
    filed = complaint("cu-1", "cmp-1", "delivery_failed", T0, charge_id="ch-1")
    filed["data"]["customer"]["name"] = "Luis Fernando"
    filed["data"]["description"] = "La película no se pudo ver."
    nested = {"batch": [({"email": {"subject": "Tu reembolso", "body": "Hola Luis"}},)], "html": "<p>Hola</p>"}
    structlog.get_logger("t").info("x", message=filed, nested=nested, when=T0, note=("to luis@example.com",))
    (line,) = lines()
    text = json.dumps(line)
    for personal in ("Luis", "luis@", "película", "reembolso", "Hola"):
        assert personal not in text
    assert line["message"]["data"]["customer"] == "[redacted]"
    assert line["message"]["data"]["description"] == "[redacted]"
    assert line["message"]["data"]["charge_id"] == "ch-1"
    assert line["nested"]["batch"][0][0]["email"] == "[redacted]"
    assert line["note"] == ["to [redacted]"]
    assert line["when"] == str(T0)


def test_a_model_in_a_line_is_logged_without_its_personal_fields(lines: Any) -> None:
    who = Customer(id="cust-9", name="Marta Ruiz", email="marta@example.es", locale="es-ES")
    structlog.get_logger("t").info("x", who=who, error=ValueError("no mailbox for marta@example.es"))
    (line,) = lines()
    assert line["who"] == {"id": "cust-9", "name": "[redacted]", "email": "[redacted]", "locale": "es-ES"}
    assert line["error"] == "ValueError: no mailbox for [redacted]"


def test_pydantic_input_in_a_traceback_is_masked(lines: Any) -> None:
    # Built apart: the traceback quotes the source line that raised.
    given = {"id": "cust-9", "name": "Marta Ruiz", "email": "not an address", "locale": 5}
    try:
        Customer.model_validate(given)
    except ValueError as exc:
        structlog.get_logger("t").warning("x.failed", error=type(exc).__name__)
    (line,) = lines()
    assert "ValidationError" in line["exception"]
    assert "input_value=[redacted]" in line["exception"]
    assert "not an address" not in line["exception"]


def test_a_libraries_line_and_its_exception_are_scrubbed(lines: Any) -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(message)s"))
    lib = logging.getLogger("tests.somelibrary")
    lib.addHandler(handler)
    try:
        try:
            _fail()
        except ValueError:
            lib.error("send to %s failed", "luis@example.com", exc_info=True)
        lib.warning("plain %s", "line", stack_info=True)
    finally:
        lib.removeHandler(handler)
    text = out.getvalue()
    assert "send to [redacted] failed" in text
    assert "Traceback" in text
    assert "plain line" in text
    assert "luis@example.com" not in text
    assert SECRET not in text


def test_a_dead_letters_log_line_holds_where_and_why_never_the_message(lines: Any) -> None:
    filed = complaint("cu-1", "cmp-1", "delivery_failed", T0, charge_id="ch-1")
    filed["data"]["customer"]["name"] = "Luis Fernando"
    filed["type"] = "complaint.unknown.v9"
    bad = [InboundRecord("complaints", 0, 7, b"cu-1", json.dumps(filed).encode()),
           InboundRecord("complaints", 0, 8, b"cu-1", b'{"name": "Luis Fernando", "note": "not an event"')]  # fmt: skip
    good, dead = decode_batch(bad, frozenset({ComplaintFiled.TYPE}), source="t", now=T0)
    assert good == []
    assert len(dead) == 2
    logged = lines()
    assert [(line["event"], line["offset"]) for line in logged] == [("message.dead_lettered", 7),
                                                                   ("message.dead_lettered", 8)]  # fmt: skip
    assert "Luis" not in json.dumps(logged)


TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def test_a_messages_lines_carry_its_trace_id_with_tracing_off(lines: Any) -> None:
    log = structlog.get_logger("t")

    async def pace() -> None:
        log.info("handling")

    service = RecoveryService(None, CommonSettings(), load_policy(), load_roster(), ManualClock(T0),
                              vouchers=VOUCHERS, uow=MemoryUnitOfWork(), pace=pace)  # fmt: skip
    filed = complaint("cu-1", "cmp-1", "delivery_failed", T0, charge_id="ch-1")
    filed["traceparent"] = TRACEPARENT
    await service.handle_records(records([filed]))
    # While loading the batch's state (no message in hand yet), then while the complaint is.
    *_, handling = [line for line in lines() if line["event"] == "handling"]
    assert handling["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert handling["correlation_id"] == "cmp-1"
    assert handling["case_id"]


def test_libraries_lines_join_the_one_json_stream() -> None:
    out = io.StringIO()
    saved = structlog.get_config()
    try:
        configure_logging("INFO", "auto", stream=out)  # not a terminal: JSON
        with structlog.contextvars.bound_contextvars(case_id="case-9", trace_id="abc"):
            logging.getLogger("aiokafka.consumer").warning("heartbeat failed for %s", "luis@example.com")
            logging.getLogger("uvicorn.error").error("port in use")
            logging.getLogger("faststream").warning("app stopping")
    finally:
        structlog.configure(**saved)
        logging.getLogger().handlers = []
    kafka, uvicorn, faststream = [json.loads(line) for line in out.getvalue().splitlines()]
    assert kafka["logger"] == "aiokafka.consumer"
    assert kafka["level"] == "warning"
    assert kafka["case_id"] == "case-9"
    assert kafka["trace_id"] == "abc"
    assert "luis@example.com" not in kafka["event"]
    assert uvicorn["logger"] == "uvicorn.error"
    assert faststream["event"] == "app stopping"
