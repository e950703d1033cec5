"""`recoveryctl demo` against a stack `recoveryctl dev --services` (`make run`) already runs."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.helpers import TopicReader

RECOVERYCTL = str(Path(sys.executable).parent / "recoveryctl")
STORY_DECISIONS = 6  # the stories decided by policy; the repeat contacts go to a person
EMAILS = 8  # one apology per decision, one acknowledgement per escalation


async def test_the_demo_plays_through_the_running_stack_and_counts_what_it_delivered(
    settings_env: dict[str, str], tmp_path: Path
) -> None:
    data_dir = tmp_path / "local"
    dev_env = {**os.environ, **settings_env, "HTTP_PORT": "0"}
    dev = subprocess.Popen([RECOVERYCTL, "dev", "--services", "--data-dir", str(data_dir)], env=dev_env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)  # fmt: skip
    assert dev.stdout is not None
    try:
        started = []
        for line in dev.stdout:  # the stack says when it runs
            started.append(line)
            if line.startswith("Running."):
                break
        assert dev.poll() is None, "".join(started)
        # Nothing in the demo's environment names the stack: it finds it through the data directory.
        demo_env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "DATABASE_", "TOPIC_"))}
        demo = await asyncio.to_thread(subprocess.run, [RECOVERYCTL, "demo", "--data-dir", str(data_dir)],
                                       env={**demo_env, "HTTP_PORT": "0"}, capture_output=True, text=True,
                                       timeout=240, cwd=tmp_path)  # fmt: skip
        out = demo.stdout + demo.stderr
        assert demo.returncode == 0, out
        async with TopicReader(settings_env["KAFKA_BOOTSTRAP_SERVERS"], settings_env["TOPIC_DECISIONS"]) as decisions:
            made = await decisions.wait_count(lambda e: e["type"] == "recovery.decision.made.v1", STORY_DECISIONS)
    finally:
        dev.send_signal(signal.SIGINT)
        dev.communicate(timeout=60)
    assert "already running" in out, out
    assert "Started recovery-service" not in out, out  # no second set of services
    # The decisions came from the running stack: they are on its topics.
    assert {e["data"]["policy"]["rule"] for e in made} >= {"failed-delivery", "micro-claim", "cancellation"}
    counted = re.search(r"Emails delivered to the local SMTP sink: (\d+) of (\d+)", out)
    assert counted is not None, out
    assert (int(counted[1]), int(counted[2])) == (EMAILS, EMAILS), out
    assert len(list((data_dir / "mail").glob("*.eml"))) == EMAILS  # what that stack's SMTP sink received
