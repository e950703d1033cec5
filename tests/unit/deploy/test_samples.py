"""deploy/samples: the test complaint is a valid complaint.filed.v1 and goes in keyed right."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from types import ModuleType

from services.common.contract import CONTENT_TYPE, decode
from services.common.contract.events import ComplaintFiled
from tests.unit.deploy.manifests import DEPLOY

SAMPLE = DEPLOY / "samples" / "complaint.json"
SCRIPT = DEPLOY / "samples" / "kafka_line.py"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_kafka_line", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_sample_complaint_decodes_as_complaint_filed_v1():
    event = decode(SAMPLE.read_bytes(), accept=frozenset({"complaint.filed.v1"}))
    assert event.envelope.type == "complaint.filed.v1"
    assert isinstance(event.data, ComplaintFiled)
    # docs/contract.md: subject is the customer id, and so is the Kafka key.
    assert event.envelope.subject == event.data.customer.id


def test_the_producer_line_is_headers_key_value_as_the_console_producer_reads_it():
    line = subprocess.run(
        [sys.executable, str(SCRIPT), str(SAMPLE)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.rstrip("\n")
    assert "\n" not in line
    headers, key, value = line.split("\t", 2)
    assert headers == f"content-type:{CONTENT_TYPE}"
    event = decode(value.encode())
    assert isinstance(event.data, ComplaintFiled)
    assert key == event.data.customer.id


def test_each_send_is_a_new_event_filed_now_about_the_same_order():
    script = _load_script()
    original = json.loads(SAMPLE.read_text())
    now = datetime(2027, 3, 1, 9, 30, tzinfo=UTC)
    first = decode(json.dumps(script.stamp(original, now)))
    second = decode(json.dumps(script.stamp(original, now + timedelta(minutes=1))))
    assert isinstance(first.data, ComplaintFiled)
    assert isinstance(second.data, ComplaintFiled)
    assert first.envelope.id != second.envelope.id != original["id"]
    assert first.data.filed_at == now
    assert first.data.complaint_id != second.data.complaint_id
    # Same order: the service sees a repeat contact on one case, not two cases.
    assert first.data.order_id == second.data.order_id == original["data"]["order_id"]


def test_as_is_keeps_the_file_unchanged():
    script = _load_script()
    original = json.loads(SAMPLE.read_text())
    line = subprocess.run(
        [sys.executable, str(SCRIPT), "--as-is", str(SAMPLE)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert json.loads(line.split("\t", 2)[2]) == original
    assert script.kafka_line(original) == line.rstrip("\n")
