"""A decision no email can be rendered for goes to the dead-letter topic with the reason,
and is handled once sent again after the templates are fixed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import asyncpg

from services.common.clock import ManualClock
from services.common.contract import encode
from services.common.records import InboundRecord
from services.notifier.application import NotifierService
from services.notifier.domain import load_templates
from services.notifier.domain.templates import SHIPPED_TEMPLATES
from services.notifier.settings import NotifierSettings
from tests.e2e.test_notifier import NOW, decision_event


async def test_an_unrenderable_decision_is_dead_lettered_and_handled_when_sent_again(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    broken = tmp_path / "templates"
    shutil.copytree(SHIPPED_TEMPLATES, broken)
    subject = broken / "es" / "decision_resolved.subject.txt"
    subject.write_text("{{ no_such_variable.anywhere }}", encoding="utf-8")
    settings = NotifierSettings()
    decision = decision_event()  # Spanish, resolved
    record = InboundRecord(settings.topic("decisions"), 0, 7, b"cust-1", encode(decision))

    result = await NotifierService(pool, settings, load_templates(broken), ManualClock(NOW)).handle_records([record])
    assert (result.requested, result.dead_letters) == (0, 1)
    (row,) = await pool.fetch("SELECT topic, value FROM outbox WHERE topic = $1", settings.topic("dlq"))
    letter = json.loads(row["value"])
    assert letter["type"] == "recovery.deadletter.v1"
    assert letter["data"]["error"]["code"] == "rejected"
    assert "decision_resolved" in letter["data"]["error"]["message"]
    assert json.loads(letter["data"]["original"]["value"])["id"] == decision.id
    assert await pool.fetchval("SELECT count(*) FROM notifications") == 0

    # Templates fixed, the same decision sent again: one email request.
    fixed = NotifierService(pool, settings, load_templates(), ManualClock(NOW))
    assert (await fixed.handle_records([record])).requested == 1
    assert (await fixed.handle_records([record])).duplicates == 1  # and only once
