"""Each customer story behind the policy, sent over Kafka to the running service, is decided as
docs/policy.md says: the same stories `make demo` plays."""

from __future__ import annotations

from pathlib import Path

from services.recovery.entrypoints.demo import play
from services.recovery.settings import RecoverySettings
from tests.helpers import ServiceProcess

EXPECTED = {
    "iTunes film that never played (US$4.99)": ("failed-delivery", [("refund", "4.99")]),
    "Telco claim under US$2.70": ("micro-claim", [("charge_waiver", "2.70")]),
    "US$7,455 shipping on toilet paper": ("charge-anomaly", [("refund", "7440.00")]),
    "Guitar broken in the hold (US$1,200)": ("damaged-item", [("refund", "1200.00"), ("voucher", "200.00")]),
    "Defective phone (Phonehouse)": ("defective-product", [("replacement", None)]),
    "Cancellation (Comcast)": ("cancellation", [("cancellation", None), ("refund", "63.00")]),
}


async def test_each_customer_story_is_decided_as_the_policy_says(settings_env: dict[str, str], tmp_path: Path) -> None:
    svc = ServiceProcess("recovery-service", settings_env, tmp_path / "svc.log").start()
    try:
        settings = RecoverySettings(**{k.lower(): v for k, v in settings_env.items()})  # type: ignore[arg-type]
        rows = await play(settings, timeout_s=60, wait_for_mail=False)
    finally:
        svc.stop()
    by_story = {r["story"]: r for r in rows}
    for story, (rule, remedies) in EXPECTED.items():
        decision = by_story[story]["decision"]
        assert decision is not None, f"{story}: no decision"
        data = decision["data"]
        assert data["policy"]["rule"] == rule, story
        assert [(r["type"], r.get("amount")) for r in data["remedies"]] == remedies, story
        assert data["decided_by"] == "policy"
        assert data["within_sla"] is True
    # Repeat contact: the first contact about a fee goes to a person, the third raises it to high.
    first = by_story["Repeat contact #1 on one fee"]["escalation"]
    third = by_story["Repeat contact #3 on one fee"]["escalation"]
    assert first["data"]["priority"] == "normal"
    assert third["data"]["priority"] == "high"
    assert third["data"]["reason"]["code"] == "repeat_contact"
