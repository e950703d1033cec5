"""schemas/ is the contract in machine-readable form: generated from the models, never stale,
and describing the events the code really emits."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from services.common import schemagen
from services.common.contract import ALL_EVENT_TYPES, EVENT_TYPES, encode, new_event
from services.common.contract.events import SlaWarning
from services.common.contract.limits_doc import Limit, limits, resolve
from services.common.settings import CommonSettings

from .contract_samples import SAMPLES
from .schema_conformance import conformance_errors

ROOT = Path(__file__).resolve().parents[2]


def load(path: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((ROOT / "schemas" / path).read_text())
    return doc


def test_schemas_in_the_repo_are_what_the_models_generate(tmp_path: Path) -> None:
    assert schemagen.main([str(tmp_path)]) == 0
    generated = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    committed = schemagen.stale_files(ROOT / "schemas", schemagen.generate())
    assert not committed, f"schemas/ is stale, run `make schemas`: {committed}"
    for path in generated:
        assert (ROOT / "schemas" / path).read_text() == (tmp_path / path).read_text(), (
            f"schemas/{path} is stale: run `make schemas`"
        )


def test_there_is_one_schema_and_one_sample_per_event_type() -> None:
    files = {p.name for p in (ROOT / "schemas" / "events").glob("*.json")}
    assert files == {f"{m.TYPE}.json" for m in ALL_EVENT_TYPES}
    assert SAMPLES.keys() == EVENT_TYPES.keys()


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_each_schema_accepts_an_event_the_code_emits(event_type: str) -> None:
    model = EVENT_TYPES[event_type]
    event = new_event(
        model.model_validate(SAMPLES[event_type]),
        source="tests",
        time=datetime(2026, 11, 22, 10, 15, tzinfo=UTC),
        subject="cust-0042",
        correlation_id="cmp-1",
        causation_id="evt-0",
    )
    instance = json.loads(encode(event))
    schema = load(f"events/{event_type}.json")
    assert conformance_errors(instance, schema, schema) == []
    # ...and refuses the same event with another type or without its data.
    assert conformance_errors({**instance, "type": "other.v1"}, schema, schema)
    assert conformance_errors({k: v for k, v in instance.items() if k != "data"}, schema, schema)


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_each_schema_requires_the_envelope_and_pins_the_type(event_type: str) -> None:
    schema = load(f"events/{event_type}.json")
    assert {"specversion", "id", "source", "type", "time", "data"} <= set(schema["required"])
    assert schema["properties"]["type"]["const"] == event_type
    assert schema["properties"]["specversion"]["const"] == "1.0"
    assert schema["properties"]["time"]["format"] == "date-time"
    assert schema.get("additionalProperties") is not False  # unknown fields are ignored


def test_money_is_a_decimal_string_in_every_schema_and_never_a_number() -> None:
    amounts = 0
    for m in ALL_EVENT_TYPES:
        schema = load(f"events/{m.TYPE}.json")
        assert '"number"' not in json.dumps(schema), f"{m.TYPE} has a JSON number"
        for name, prop in _properties(schema):
            if name in ("amount", "claimed_amount"):
                amounts += 1
                money = next((s for s in prop.get("anyOf", [prop]) if "type" in s), prop)
                assert money["type"] == "string"
                assert re.fullmatch(money["pattern"], "4.99")
                assert re.fullmatch(money["pattern"], "3000")
                assert not re.fullmatch(money["pattern"], "4.99e2")
                assert not re.fullmatch(money["pattern"], "-4.99")
                # Bounded digits: 15 integer digits and 4 decimals at most.
                assert re.fullmatch(money["pattern"], "9" * 15 + ".9999")
                assert not re.fullmatch(money["pattern"], "9" * 16)
                assert not re.fullmatch(money["pattern"], "1.99999")
    assert amounts >= 5


# What the wire carries as it arrived, not bounded by the contract (the message size is).
AS_RECEIVED = {("recovery.deadletter.v1", "original.key"), ("recovery.deadletter.v1", "original.value")}


def test_every_string_and_list_in_every_schema_has_a_bound() -> None:
    unbounded = set()
    for m in ALL_EVENT_TYPES:
        schema = load(f"events/{m.TYPE}.json")
        fields = limits(schema) + [  # the envelope's attributes, and data's fields
            Limit(f"data.{lim.path}", lim.value, lim.bound, lim.schema)
            for lim in limits(resolve(schema["properties"]["data"], schema), schema)
        ]
        for lim in fields:
            kind, keys = lim.schema.get("type"), lim.schema.keys()
            fixed = {"enum", "const", "format"} & keys  # a set of values, or a date-time
            if (kind == "string" and not fixed and "maxLength" not in keys) or (
                kind == "array" and "maxItems" not in keys
            ):
                unbounded.add((m.TYPE, lim.path.removeprefix("data.")))
    assert unbounded == AS_RECEIVED


def test_the_limits_page_says_what_the_models_do() -> None:
    page = (ROOT / "docs" / "limits.md").read_text(encoding="utf-8")
    assert page == schemagen.limits_page(page), f"docs/limits.md is stale: run `{schemagen.LIMITS_COMMAND}`"
    assert "| `data` | object | nested at most 32 levels deep |" in page
    assert "| `customer.email` | email address | at most 254 characters |" in page


def test_check_mode_finds_a_stale_limits_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "limits.md"
    page.write_text(f"# Limits\n\n{schemagen.LIMITS_BEGIN}\nold\n{schemagen.LIMITS_END}\nafter\n")
    args = [str(tmp_path / "schemas"), "--limits-page", str(page)]
    assert schemagen.main(args) == 0
    assert page.read_text().startswith("# Limits\n\n")
    assert page.read_text().endswith("\nafter\n")
    assert "| `id` | string | 1 to 200 characters |" in page.read_text()
    assert schemagen.main([*args, "--check"]) == 0
    page.write_text(page.read_text().replace("200 characters", "300 characters"))
    capsys.readouterr()
    assert schemagen.main([*args, "--check"]) == 1
    assert str(page) in capsys.readouterr().err


def test_check_mode_lists_stale_missing_and_left_over_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert schemagen.main([str(tmp_path)]) == 0
    assert schemagen.main([str(tmp_path), "--check"]) == 0
    (tmp_path / "events" / "recovery.sla.warning.v1.json").write_text("{}\n")
    (tmp_path / "events" / "billing.charge.posted.v1.json").unlink()
    (tmp_path / "events" / "recovery.gone.v1.json").write_text("{}\n")
    capsys.readouterr()
    assert schemagen.main([str(tmp_path), "--check"]) == 1
    err = capsys.readouterr().err
    assert "run `make schemas`" in err
    for name in ("recovery.sla.warning.v1", "billing.charge.posted.v1", "recovery.gone.v1"):
        assert f"events/{name}.json" in err
    assert schemagen.main([str(tmp_path)]) == 0
    assert not (tmp_path / "events" / "recovery.gone.v1.json").exists()
    assert schemagen.main([str(tmp_path), "--check"]) == 0


# --------------------------------------------------------------------------- AsyncAPI


def build_app(settings: CommonSettings) -> FastStream:
    """A stand-in for a service's ``build_app``: publishes decisions, reads charges."""
    broker = KafkaBroker(settings.kafka_bootstrap_servers)
    broker.publisher(settings.topic("decisions"), title="decisions", schema=SlaWarning)

    @broker.subscriber(settings.topic("charges"), group_id="fake")
    async def on_charge(body: dict[str, Any]) -> None: ...

    return FastStream(broker, specification=AsyncAPI(title="fake", version="1"))


def test_asyncapi_comes_from_the_apps_with_the_contracts_default_topics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOPIC_DECISIONS", "this.machine.only")
    fake = schemagen.AppSource("fake", __name__, "services.common.settings", "CommonSettings")
    docs = schemagen.asyncapi_documents([fake])
    assert set(docs) == {"asyncapi.json", "asyncapi-fake.json"}
    addresses = {c["address"] for c in docs["asyncapi-fake.json"]["channels"].values()}
    assert addresses == {"recovery.decisions", "billing.charges"}
    assert docs["asyncapi.json"]["channels"] == docs["asyncapi-fake.json"]["channels"]
    assert docs["asyncapi.json"]["info"]["title"] == schemagen.TITLE


def test_an_app_not_written_yet_is_left_out_with_a_note(capsys: pytest.CaptureFixture[str]) -> None:
    missing = schemagen.AppSource("later", "services.recovery.entrypoints.not_yet", "services.common.settings", "X")
    docs = schemagen.asyncapi_documents([missing])
    assert set(docs) == {"asyncapi.json"}
    assert "not there yet" in capsys.readouterr().err


def _properties(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out = list(schema.get("properties", {}).items())
    for sub in schema.get("$defs", {}).values():
        out += list(sub.get("properties", {}).items())
    return out
