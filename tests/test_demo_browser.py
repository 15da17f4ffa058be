"""End to end: the web demo in headless Chromium, two devices of one user.

Runs the real ``sessionstore demo`` command (a subprocess on a free loopback port, against a
private LocalServer) and drives Debian's ``/usr/bin/chromium`` with Playwright. Under
``CI=true`` a missing Chromium or Playwright fails the test; elsewhere it is skipped.

The dashboard screenshots (desktop 1280 px, phone 390 px) are written to
``docs/dashboard.png`` and ``docs/dashboard-phone.png`` when missing or
``SESSIONSTORE_UPDATE_SCREENSHOT=1`` is set (they change with every run: times, ids), else
to the test's temp dir.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from conftest import unavailable
from sessionstore.demo_app import DEMO_USERS
from sessionstore.testing import LocalServer, free_port, local_binary
from web_support import LAPTOP_UA, PHONE_UA

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page, Playwright, ViewportSize

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
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "dashboard.png"
PHONE_SCREENSHOT = SCREENSHOT.with_name("dashboard-phone.png")
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}


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


def _launch(playwright: Playwright, *args: str) -> Browser:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *args])


def _sign_in(page: Page, url: str, user: str = "alice", password: str = "") -> None:
    page.goto(f"{url}/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password or DEMO_USERS[user])
    page.click("button[type=submit]")


# Per card: each value cell's width over the card's, and for each visible text node its
# length and the number of lines it wraps into (distinct tops of its line boxes).
_MEASURE = """card => {
  const width = card.getBoundingClientRect().width;
  const cells = [...card.querySelectorAll("dd, td + td")]
    .map(cell => cell.getBoundingClientRect().width / width);
  const texts = [];
  const walk = document.createTreeWalker(card, NodeFilter.SHOW_TEXT);
  while (walk.nextNode()) {
    const text = walk.currentNode.textContent.trim();
    const range = document.createRange();
    range.selectNodeContents(walk.currentNode);
    const tops = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
    if (text && tops.size) texts.push([text, tops.size]);
  }
  return {cells, texts};
}"""


def _assert_readable(card: Locator) -> None:
    """The value column keeps at least half the card; no text wraps a few characters a line."""
    measured = card.evaluate(_MEASURE)
    assert measured["cells"] and min(measured["cells"]) >= 0.5, measured["cells"]
    for text, lines in measured["texts"]:
        assert len(text) / lines >= 12 or lines == 1, (text, lines)


def test_two_devices_sign_one_out(demo_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    errors: list[Exception] = []
    with sync_playwright() as playwright:
        browser = _launch(playwright)
        try:
            laptop = browser.new_context(user_agent=LAPTOP_UA, viewport=DESKTOP)
            phone = browser.new_context(
                user_agent=PHONE_UA,
                viewport=PHONE,
                is_mobile=True,
                has_touch=True,
                device_scale_factor=2,  # as phones render (and a sharp screenshot)
            )
            page_a, page_b = laptop.new_page(), phone.new_page()
            for page in (page_a, page_b):
                page.on("pageerror", lambda error: errors.append(error))
                _sign_in(page, demo_url)
                page.wait_for_url(f"{demo_url}/dashboard")

            # On the phone (390 px) the card stays readable, the raw user agent too.
            page_b.reload()
            here = page_b.locator(".device", has=page_b.get_by_text("this device", exact=True))
            assert "Chrome on Android" in here.inner_text()
            _assert_readable(here)
            here.get_by_text("User agent").click()
            assert here.get_by_text(PHONE_UA).is_visible()
            _assert_readable(here)
            page_b.reload()
            assert page_b.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

            page_a.reload()
            cards = page_a.locator(".device")
            assert cards.count() == 2
            mine = page_a.locator(".device", has=page_a.get_by_text("this device", exact=True))
            assert mine.count() == 1
            assert "Chrome on Linux" in mine.inner_text()
            assert "this device" in mine.inner_text()
            other = page_a.locator(".device", has_not=page_a.get_by_text("this device", exact=True))
            assert "Chrome on Android" in other.inner_text()

            # The parsed browser and OS show; the raw user agent only on demand.
            assert "Chrome 156 on Android 14" in other.inner_text()
            raw = other.get_by_text(PHONE_UA)
            assert raw.is_hidden()
            other.get_by_text("User agent").click()
            assert raw.is_visible()
            page_a.reload()

            # Times carry a zone and an age.
            signed_in = mine.locator("dd", has=page_a.locator("time")).first.inner_text()
            assert re.fullmatch(
                r"\w{3} \d{1,2}, \d{4}, \d{1,2}:\d\d [AP]M (UTC|GMT[+-]\d+|[A-Z]{3,5}) "
                r"\(\d+ seconds? ago\)",
                signed_in,
            ), signed_in

            # Cookie flags as the browser stored them.
            jar = {c["name"]: c for c in laptop.cookies()}
            assert jar["ss_access"]["httpOnly"] and jar["ss_access"]["secure"]
            assert jar["ss_access"]["sameSite"] == "Strict"
            assert jar["ss_refresh"]["path"] == "/auth/refresh"
            assert not jar["ss_csrf"]["httpOnly"]

            update = os.environ.get("SESSIONSTORE_UPDATE_SCREENSHOT") == "1"
            for page, target in ((page_a, SCREENSHOT), (page_b, PHONE_SCREENSHOT)):
                if not (update or not target.exists()):
                    target = tmp_path / target.name
                target.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(target), full_page=True)
                assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

            # The protected API answers for the laptop.
            page_a.goto(f"{demo_url}/api/me")
            assert '"user_id":"alice"' in page_a.inner_text("body")
            page_a.goto(f"{demo_url}/dashboard")

            # A signs B out: the button names it, a dialog confirms, a message says so.
            other = page_a.locator(".device", has_not=page_a.get_by_text("this device", exact=True))
            other.get_by_role("button", name="Sign out Chrome on Android").click()
            dialog = page_a.locator("dialog[open]")
            assert dialog.get_by_role("heading", name="Sign out Chrome on Android?").is_visible()
            dialog.get_by_role("button", name="Sign out Chrome on Android").click()
            page_a.wait_for_url(f"{demo_url}/dashboard")
            notice = page_a.get_by_role("status")
            assert notice.inner_text() == "Signed out Chrome on Android (1 session)."
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
    assert errors == []


def test_a_refused_login_keeps_the_form_and_counts_down(demo_url: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = _launch(playwright)
        try:
            page = browser.new_page(viewport=PHONE, is_mobile=True)
            for _ in range(6):
                _sign_in(page, demo_url, "bob", "guess")
            alert = page.get_by_role("alert")
            assert "Too many sign-in attempts for this account" in alert.inner_text()
            assert page.input_value("input[name=username]") == "bob"
            button = page.get_by_role("button", name="Sign in")
            assert button.is_disabled()

            def seconds_left() -> int:
                found = re.search(r"Try again in (\d+) s", alert.inner_text())
                return int(found.group(1)) if found else 0

            first = seconds_left()
            assert first >= 1
            deadline = time.monotonic() + 30
            while seconds_left() and time.monotonic() < deadline:
                time.sleep(0.2)
            assert "You can try again now." in alert.inner_text()
            assert button.is_enabled()
            page.fill("input[name=password]", "builder")
            button.click()
            page.wait_for_url(f"{demo_url}/dashboard")
        finally:
            browser.close()


def test_plain_http_from_another_host_says_why_sign_in_loops(demo_url: str) -> None:
    from playwright.sync_api import sync_playwright

    port = demo_url.rsplit(":", 1)[1]
    remote = f"http://demo.test:{port}"  # another host name, still this machine's loopback
    with sync_playwright() as playwright:
        browser = _launch(playwright, "--host-resolver-rules=MAP demo.test 127.0.0.1")
        try:
            page = browser.new_page(viewport=PHONE)
            _sign_in(page, remote)
            page.wait_for_url(f"{remote}/login")  # the Secure cookies were dropped
            assert "ss_access" not in {c["name"] for c in page.context.cookies()}
            warning = page.locator(".warning").inner_text()
            assert "plain HTTP at demo.test" in warning and "--insecure-cookies" in warning
            page.goto(f"{demo_url}/login")
            assert page.locator(".warning").count() == 0
        finally:
            browser.close()
