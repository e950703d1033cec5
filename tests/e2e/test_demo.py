"""`recoveryctl demo` against a stack `recoveryctl dev --services` (`make run`) already runs, and
on its own (`make demo` on a fresh machine), when it leaves the stack and the desk running:
either way it prints the desk's address and a sign-in that works there."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.helpers import TopicReader

RECOVERYCTL = str(Path(sys.executable).parent / "recoveryctl")
STORY_DECISIONS = 6  # the stories decided by policy; the repeat contacts go to a person
EMAILS = 8  # one apology per decision, one acknowledgement per escalation
DESK = re.compile(r"The escalation desk: (http://\S+/desk)\s+Sign in as demo-supervisor with the token: (\S+)")


async def signed_in_to_the_desk(out: str) -> None:
    """The desk the demo printed answers, its sign-in works, and its queue shows the demo's escalation."""
    printed = DESK.search(out)
    assert printed is not None, out
    url, token = printed[1], printed[2]
    async with httpx.AsyncClient(timeout=30) as client:
        form = await client.get(f"{url}/signin")
        assert form.status_code == 200, form.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf is not None, form.text
        signed = await client.post(f"{url}/signin", data={"csrf": csrf[1], "token": token})
        assert (signed.status_code, signed.headers.get("location")) == (303, "/desk/queue"), signed.text
        queue = await client.get(f"{url}/queue")
        assert queue.status_code == 200
        assert "demo-supervisor (supervisor)" in queue.text
        assert "data-case=" in queue.text  # the repeat contacts' escalation


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
        await signed_in_to_the_desk(out)  # the running stack's desk
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


async def test_the_demo_on_its_own_leaves_the_desk_running_until_ctrl_c(
    settings_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**os.environ, **settings_env, "HTTP_PORT": "0"}  # the servers from the environment; services its own
    demo = subprocess.Popen([RECOVERYCTL, "demo", "--data-dir", str(tmp_path / "local")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)  # fmt: skip
    assert demo.stdout is not None
    lines: list[str] = []
    try:
        for line in demo.stdout:
            lines.append(line)
            if line.startswith("Left running"):
                break
        out = "".join(lines)
        assert demo.poll() is None, out
        assert "Started recovery-service" in out, out
        await signed_in_to_the_desk(out)
        # A second demo on the data directory plays through this stack rather than start another.
        demo_env = {k: v for k, v in env.items() if not k.startswith(("KAFKA_", "DATABASE_", "TOPIC_"))}
        again = await asyncio.to_thread(subprocess.run, [RECOVERYCTL, "demo", "--data-dir", str(tmp_path / "local")],
                                        env=demo_env, capture_output=True, text=True, timeout=240,
                                        cwd=tmp_path)  # fmt: skip
        assert again.returncode == 0, again.stdout + again.stderr
        assert "already running" in again.stdout + again.stderr
    finally:
        demo.send_signal(signal.SIGINT)
        rest, _ = demo.communicate(timeout=60)
    assert demo.returncode == 0, out + rest
