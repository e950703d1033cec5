"""The desk in a real browser: Chromium driven by Playwright against the recovery service
run as a process on the real broker and PostgreSQL (as tests/e2e runs it).

The browser is the system's (Debian's ``chromium``, found by path: nothing is downloaded
from a browser vendor). Without it the tests fail, saying what to install. A failed test
leaves a screenshot and the page's HTML under ``.local/browser-artifacts/``, printed.

Every page a test opens is watched: a Content-Security-Policy violation the browser reports
on its console fails the test, and every request's URL is kept (:class:`Seen`).
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from playwright.async_api import BrowserContext, ConsoleMessage, Page, Request, async_playwright

from tests.helpers import ROOT, ServiceProcess, sign_in

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
ARTIFACTS = ROOT / ".local" / "browser-artifacts"


FAILED = pytest.StashKey[bool]()


@dataclass
class Seen:
    """What the browser did on a test's page: every request's URL, and the console's reports
    of a Content-Security-Policy violation."""

    urls: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        def on_console(message: ConsoleMessage) -> None:
            if "Content Security Policy" in message.text:
                self.csp_violations.append(message.text)

        def on_request(request: Request) -> None:
            self.urls.append(request.url)

        page.on("console", on_console)
        page.on("request", on_request)


SEEN = pytest.StashKey[Seen]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[BrowserContext]:
    """Chromium on a new, empty profile (a persistent context: the profile is ours)."""
    if not CHROMIUM.exists():
        pytest.fail(f"no browser at {CHROMIUM}: run `make system-tools` (deploy/tools/system-packages.sh installs"
                    " Debian's chromium)", pytrace=False)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="desk-chromium-") as profile:
        async with async_playwright() as p:
            context = await p.chromium.launch_persistent_context(
                profile,
                executable_path=str(CHROMIUM),
                args=ARGS,
                headless=True,
                viewport={"width": 1280, "height": 900},
            )
            yield context
            await context.close()


@dataclass
class DeskServer:
    url: str
    env: dict[str, str]
    process: ServiceProcess
    pool: asyncpg.Pool

    async def token(self, person: str, role: str) -> str:
        headers = await sign_in(self.pool, person, role)  # type: ignore[arg-type]
        return headers["Authorization"].removeprefix("Bearer ")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def desk(settings_env: dict[str, str], pool: asyncpg.Pool, tmp_path: Path) -> AsyncIterator[DeskServer]:
    port = _free_port()
    env = {**settings_env, "HTTP_PORT": str(port), "HTTP_HOST": "127.0.0.1", "RECOVERY_TIMER_POLL_S": "0.5"}
    proc = ServiceProcess("recovery-service", env, tmp_path / "recovery.log").start()
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            try:
                if (await client.get(f"{url}/readyz")).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
        else:
            proc.stop()
            pytest.fail(f"the service did not get ready:\n{proc.log()[-3000:]}")
    yield DeskServer(url, env, proc, pool)
    proc.stop()


@pytest.fixture
async def page(browser: BrowserContext, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    await browser.clear_cookies()
    p = await browser.new_page()
    await p.set_viewport_size({"width": 1280, "height": 900})
    seen = request.node.stash[SEEN] = Seen()
    seen.watch(p)
    yield p
    if request.node.stash.get(FAILED, False):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = request.node.name.replace("/", "_")
        await p.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        (ARTIFACTS / f"{name}.html").write_text(await p.content(), encoding="utf-8")
        print(f"\nbrowser artefacts: {ARTIFACTS / name}.png and .html")
    await p.close()
    if seen.csp_violations and not request.node.stash.get(FAILED, False):
        pytest.fail("the page broke its Content-Security-Policy:\n" + "\n".join(seen.csp_violations), pytrace=False)


@pytest.fixture
def seen(page: Page, request: pytest.FixtureRequest) -> Seen:
    """The URLs and CSP reports of the test's page."""
    seen: Seen = request.node.stash[SEEN]
    return seen
