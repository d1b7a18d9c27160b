"""Browser fixtures: headless Chromium from the Debian package `chromium`, driven by
Playwright (its Python package only: no browser download). A missing browser fails the tests
(infrastructure never skips); `.ci/run` installs it.

Every page runs under a `Watch`: requests to any host but the loopback are aborted and
counted, console errors and uncaught page errors are collected, and `shot()` writes a
full-page screenshot under `.artifacts/ui/` (git-ignored) for people to look at.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Route,
    async_playwright,
)

ARTIFACTS = Path(os.environ.get("VITALS_TEST_ARTIFACTS",
                                Path(__file__).resolve().parents[3] / ".artifacts")) / "ui"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def chromium_executable() -> str:
    """The Debian chromium binary (the /usr/bin/chromium wrapper execs it)."""
    for candidate in ("/usr/lib/chromium/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail("headless Chromium is missing: apt-get install -y chromium (.ci/run does)")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=chromium_executable(), headless=True,
                                     args=["--no-sandbox", "--disable-gpu",
                                           "--disable-dev-shm-usage"])
        try:
            yield b
        finally:
            await b.close()


@dataclass
class Watch:
    """One browser context (one signed-in tab) and what it did."""

    context: BrowserContext
    page: Page
    base: str
    external: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    async def open(self, hash_route: str, *, page_name: str, loads: int = 1) -> None:
        """Navigate to `/ui#<route>` and wait until that page has rendered `loads` times."""
        await self.page.goto(f"{self.base}/ui#{hash_route}")
        await self.page.wait_for_function(
            "([p, n]) => { const e = document.getElementById('page');"
            " return e && e.dataset.page === p && Number(e.dataset.loaded || 0) >= n; }",
            arg=[page_name, loads], timeout=30_000)

    async def sign_in(self, key: str) -> None:
        await self.page.goto(f"{self.base}/ui")
        await self.page.fill("#signin-key", key)
        await self.page.click("#signin-form button")
        await self.page.wait_for_selector("#who-tenant")

    async def shot(self, name: str, *, full_page: bool = True) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.png"
        await self.page.wait_for_timeout(300)  # charts draw on the next animation frame
        await self.page.screenshot(path=str(path), full_page=full_page)
        return path

    async def text(self, selector: str) -> str:
        return (await self.page.locator(selector).first.inner_text()).strip()


async def watch(browser: Browser, base: str) -> Watch:
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    page = await context.new_page()
    w = Watch(context, page, base)

    async def gate(route: Route) -> None:
        host = urlsplit(route.request.url).hostname or ""
        if host in LOOPBACK:
            await route.continue_()
        else:
            w.external.append(route.request.url)
            await route.abort()

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            w.console_errors.append(f"{msg.text} @ {msg.location.get('url', '')}")

    await context.route("**/*", gate)
    page.on("console", on_console)
    page.on("pageerror", lambda exc: w.console_errors.append(f"uncaught: {exc}"))
    return w
