"""End to end: the web demo in headless Chromium, two devices of one user.

Runs the real ``sessionstore demo`` command (a subprocess on a free loopback port, against a
private LocalServer) and drives Debian's ``/usr/bin/chromium`` with Playwright. Under
``CI=true`` a missing Chromium or Playwright fails the test; elsewhere it is skipped.

The dashboard screenshot is written to ``docs/dashboard.png`` when that file is missing or
``SESSIONSTORE_UPDATE_SCREENSHOT=1`` is set (it changes with every run: times, ids), else
to the test's temp dir.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import unavailable
from sessionstore.testing import LocalServer, free_port, local_binary

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LAPTOP_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/156.0.0.0 Safari/537.36"
)
PHONE_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/156.0.0.0 Mobile Safari/537.36"
)
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "dashboard.png"


def _missing() -> str | None:
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing (apt-get install chromium; .ci/run installs it)"
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is missing (pip install -e '.[dev]')"
    if local_binary() is None:
        return "no valkey-server or redis-server to run the demo against"
    return None


@pytest.fixture
def demo_url() -> Iterator[str]:
    """The demo command on a free loopback port against a private server; stopped by pid."""
    reason = _missing()
    if reason is not None:
        unavailable(reason)
    binary = local_binary()
    assert binary is not None
    with LocalServer(binary, name="demo-browser") as server:
        port = free_port()
        command = [sys.executable, "-m", "sessionstore", "demo", "--redis-url", server.url]
        proc = subprocess.Popen(
            [*command, "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_up(url, proc)
            yield url
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            assert proc.stdout is not None
            proc.stdout.close()


def _wait_until_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            assert proc.stdout is not None
            pytest.fail(f"the demo exited early:\n{proc.stdout.read().decode()}")
        try:
            with urllib.request.urlopen(f"{url}/login", timeout=1) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    pytest.fail(f"the demo did not answer within {timeout:g} s")


def test_two_devices_sign_one_out(demo_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import Page, sync_playwright

    def sign_in(page: Page) -> None:
        page.goto(f"{demo_url}/login")
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", "wonderland")
        page.click("button[type=submit]")
        page.wait_for_url(f"{demo_url}/dashboard")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            laptop = browser.new_context(
                user_agent=LAPTOP_UA, viewport={"width": 960, "height": 720}
            )
            phone = browser.new_context(user_agent=PHONE_UA)
            page_a, page_b = laptop.new_page(), phone.new_page()
            sign_in(page_a)
            sign_in(page_b)

            page_a.reload()
            cards = page_a.locator(".device")
            assert cards.count() == 2
            mine = page_a.locator(".device", has=page_a.locator(".badge"))
            assert mine.count() == 1
            assert "Chrome on Linux" in mine.inner_text()
            assert "this device" in mine.inner_text()
            other = page_a.locator(".device", has_not=page_a.locator(".badge"))
            assert "Chrome on Android" in other.inner_text()
            assert "Pixel 8" in other.inner_text()  # the user agent is shown

            # Cookie flags as the browser stored them.
            jar = {c["name"]: c for c in laptop.cookies()}
            assert jar["ss_access"]["httpOnly"] and jar["ss_access"]["secure"]
            assert jar["ss_access"]["sameSite"] == "Strict"
            assert jar["ss_refresh"]["path"] == "/auth/refresh"
            assert not jar["ss_csrf"]["httpOnly"]

            update = os.environ.get("SESSIONSTORE_UPDATE_SCREENSHOT") == "1"
            target = SCREENSHOT if update or not SCREENSHOT.exists() else tmp_path / "dash.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            page_a.screenshot(path=str(target), full_page=True)
            assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

            # The protected API answers for the laptop.
            page_a.goto(f"{demo_url}/api/me")
            assert '"user_id":"alice"' in page_a.inner_text("body")
            page_a.goto(f"{demo_url}/dashboard")

            # A signs B out; A keeps one device.
            other = page_a.locator(".device", has_not=page_a.locator(".badge"))
            other.get_by_role("button", name="Sign out").click()
            page_a.wait_for_url(f"{demo_url}/dashboard")
            assert page_a.locator(".device").count() == 1

            # B's next page load lands on the login page.
            page_b.goto(f"{demo_url}/dashboard")
            page_b.wait_for_url(f"{demo_url}/login")
            assert page_b.get_by_role("heading", name="Sign in").is_visible()
            assert {c["name"] for c in phone.cookies()} == {"ss_device"}
            laptop.close()
            phone.close()
        finally:
            browser.close()
