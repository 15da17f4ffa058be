"""The demo web app through a test client: the login page, its rate limiter, sign-outs, API."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from sessionstore import demo
from sessionstore.demo_app import DEMO_USERS, create_app, pages
from sessionstore.demo_app.useragent import parse
from web_support import LAPTOP_UA, PHONE_UA, server_fixtures

BASE = "https://testserver"

server, url = server_fixtures("demo-app")


def sign_in(client: TestClient, user: str = "alice") -> None:
    answer = client.post(
        "/login", data={"username": user, "password": DEMO_USERS[user]}, follow_redirects=False
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/dashboard"


def csrf(client: TestClient) -> str:
    return str(client.cookies["ss_csrf"])


def test_anonymous_visitors_are_sent_to_the_login_page(url: str) -> None:
    with TestClient(create_app(url), base_url=BASE) as client:
        answer = client.get("/dashboard", follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/login"
        page = client.get("/login")
        assert page.status_code == 200 and "alice" in page.text and "wonderland" in page.text
        api = client.get("/api/me")
        assert api.status_code == 401 and api.headers["www-authenticate"] == 'Bearer realm="api"'
        assert api.json() == {
            "error": "invalid_request",
            "error_description": "Authentication required",
            "reason": "missing",
        }  # the integrations' one shape, not Starlette's text/plain


def test_the_sixth_login_attempt_in_a_minute_is_refused(url: str) -> None:
    with TestClient(create_app(url), base_url=BASE) as client:
        for _ in range(5):
            wrong = client.post("/login", data={"username": "alice", "password": "guess"})
            assert wrong.status_code == 400 and "Wrong user name or password" in wrong.text
        refused = client.post("/login", data={"username": "alice", "password": "wonderland"})
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 12
        assert "Too many sign-in attempts for this account" in refused.text
        # The refusal keeps the form, the user name filled in, and counts the wait down.
        assert "<form method=post action=/login>" in refused.text
        assert 'name=username autocomplete=username value="alice"' in refused.text
        wait = refused.headers["retry-after"]
        assert f"Try again in <b id=countdown data-s={wait}>{wait} s</b>" in refused.text
        sign_in(client, "bob")  # another account is not held up


def test_dashboard_sign_outs_and_the_api(url: str) -> None:
    # One client (one event loop for the app's store), two cookie jars: two devices.
    with TestClient(create_app(url), base_url=BASE) as client:
        sign_in(client)
        laptop = dict(client.cookies)
        client.cookies.clear()
        sign_in(client)
        phone = dict(client.cookies)

        def use(jar: dict[str, str]) -> None:
            client.cookies.clear()
            for name, value in jar.items():
                client.cookies.set(name, value)

        use(laptop)
        page = client.get("/dashboard")
        assert page.text.count('class="card device"') == 2
        assert page.text.count("<span class=badge>this device</span>") == 1
        me = client.get("/api/me").json()
        assert me["user_id"] == "alice" and me["degraded"] is False

        refused = client.post("/devices/signout-others")  # no CSRF token
        assert refused.status_code == 403
        done = client.post("/devices/signout-others", data={"csrf_token": csrf(client)})
        assert done.status_code == 200 and done.text.count('class="card device"') == 1

        use(phone)
        gone = client.get("/dashboard", follow_redirects=False)
        assert gone.status_code == 303 and gone.headers["location"] == "/login"

        use(laptop)
        (mine,) = re.findall(r'data-device="([^"]+)"', done.text)
        out = client.post(
            "/devices/signout",
            data={"csrf_token": csrf(client), "device_id": mine},
            follow_redirects=False,
        )
        assert out.status_code == 303 and out.headers["location"] == "/login"
        use(laptop)  # even with the old cookies back, the session is gone
        assert client.get("/api/me").status_code == 401

        metrics = client.get("/metrics").text
        assert 'sessionstore_events_total{event="created",reason=""} 2.0' in metrics
        assert 'sessionstore_operation_seconds_count{operation="login",outcome="ok"}' in metrics


def test_logout_ends_the_session(url: str) -> None:
    with TestClient(create_app(url), base_url=BASE) as client:
        sign_in(client)
        access = str(client.cookies["ss_access"])
        out = client.post("/logout", data={"csrf_token": csrf(client)}, follow_redirects=False)
        assert out.status_code == 303 and out.headers["location"] == "/login"
        client.cookies.clear()
        copy = client.get("/api/me", headers={"Authorization": f"Bearer {access}"})
        assert copy.status_code == 401 and copy.json()["reason"] == "revoked"


def two_devices(client: TestClient) -> tuple[dict[str, str], dict[str, str]]:
    """Sign alice in from a laptop and a phone: their cookie jars."""
    jars = []
    for agent in (LAPTOP_UA, PHONE_UA):
        client.cookies.clear()
        client.headers["user-agent"] = agent
        sign_in(client)
        # Not the one-shot notice ("New sign-in: ..."): a browser shows it once.
        jars.append({k: v for k, v in client.cookies.items() if k != "ss_notice"})
    return jars[0], jars[1]


def use(client: TestClient, jar: dict[str, str], agent: str = LAPTOP_UA) -> None:
    client.cookies.clear()
    client.headers["user-agent"] = agent
    for name, value in jar.items():
        client.cookies.set(name, value)


def test_sign_out_names_the_device_confirms_and_says_what_it_did(url: str) -> None:
    with TestClient(create_app(url), base_url=BASE) as client:
        laptop, _ = two_devices(client)
        use(client, laptop)
        page = client.get("/dashboard").text
        assert "<button type=submit>Sign out Chrome on Android</button>" in page
        assert "<button type=submit>Sign out Chrome on Linux</button>" in page
        phone_id = re.findall(r'data-device="([^"]+)"', page)[1]  # this device comes first

        # The confirm step works without JavaScript: a GET page with the POST form.
        ask = client.get("/devices/signout", params={"device_id": phone_id})
        assert ask.status_code == 200 and "<h3>Sign out Chrome on Android?</h3>" in ask.text
        assert "<a class=button href=/dashboard>Cancel</a>" in ask.text
        assert "Sign out Chrome on Android</button>" in ask.text
        # ... and the dashboard carries the same step in a <dialog> per device.
        assert "<dialog id=confirm-1><h3>Sign out Chrome on Android?</h3>" in page

        done = client.post(
            "/devices/signout",
            data={"csrf_token": csrf(client), "device_id": phone_id},
            follow_redirects=False,
        )
        assert done.status_code == 303 and done.headers["location"] == "/dashboard"
        shown = client.get("/dashboard").text
        assert "<p class=notice role=status>Signed out Chrome on Android (1 session).</p>" in shown
        assert "class=notice" not in client.get("/dashboard").text  # shown once

        use(client, {}, PHONE_UA)
        sign_in(client)  # the phone again
        use(client, laptop)
        assert "Sign out 1 other device?" in client.get("/devices/signout-others").text
        others = client.post("/devices/signout-others", data={"csrf_token": csrf(client)})
        assert others.url.path == "/dashboard"
        assert "Signed out every other device (1 session)." in others.text

        out = client.post("/logout", data={"csrf_token": csrf(client)})
        assert out.url.path == "/login"
        assert "<p class=notice role=status>You are signed out.</p>" in out.text


def test_times_carry_a_zone_and_an_age(url: str) -> None:
    with TestClient(create_app(url), base_url=BASE) as client:
        sign_in(client)
        page = client.get("/dashboard").text
        stamps = re.findall(
            r"<time datetime=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ>"
            r"\d{1,2} \w{3} \d{4}, \d\d:\d\d ([A-Z]{2,5}|[+-]\d{2,4})</time> "
            r"<span class=ago>\(\d+ seconds? ago\)</span>",
            page,
        )
        assert len(stamps) == 5  # signed in, last active, password, the history, the login event
    assert pages.ago(100, 100) == "0 seconds ago" and pages.ago(100, 101) == "1 second ago"
    assert pages.ago(0, 59 * 60) == "59 minutes ago" and pages.ago(0, 60) == "1 minute ago"
    assert pages.ago(0, 7300) == "2 hours ago" and pages.ago(0, 3 * 86400 + 5) == "3 days ago"
    assert pages.ago(10, 0) == "0 seconds ago"  # a clock step back is not the future


def test_the_device_shows_its_parsed_browser_and_the_raw_agent_on_demand(url: str) -> None:
    with TestClient(create_app(url), base_url=BASE) as client:
        client.headers["user-agent"] = PHONE_UA
        sign_in(client)
        page = client.get("/dashboard").text
        assert "<dt>Browser</dt><dd>Chrome 156 on Android 14" in page
        assert f"<details><summary>User agent</summary><code>{PHONE_UA}</code></details>" in page
        assert page.count(PHONE_UA) == 1  # nowhere else, raw


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        (LAPTOP_UA, "Chrome 156 on Linux"),
        (PHONE_UA, "Chrome 156 on Android 14"),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
            "Safari 17 on iOS 17",
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.1 Safari/605.1.15",
            "Safari 17 on macOS",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0",
            "Firefox 128 on Windows",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0",
            "Edge 120 on Windows",
        ),
        (
            "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0.0.0 Safari/537.36",
            "Chrome 120 on ChromeOS",
        ),
        ("curl/8.5.0", "curl 8 on unknown OS"),
        ("", "Unknown browser on unknown OS"),
    ],
)
def test_the_user_agent_parser(agent: str, expected: str) -> None:
    assert str(parse(agent)) == expected


@pytest.mark.parametrize(
    ("base", "secure", "warned"),
    [
        ("http://192.168.1.5:8000", True, True),
        ("http://demo.lan:8000", True, True),
        ("http://127.0.0.1:8000", True, False),
        ("http://localhost:8000", True, False),
        ("http://[::1]:8000", True, False),
        ("https://demo.lan", True, False),
        ("http://192.168.1.5:8000", False, False),  # --insecure-cookies: nothing is dropped
    ],
)
def test_plain_http_from_another_host_is_told_why_sign_in_loops(
    url: str, base: str, secure: bool, warned: bool
) -> None:
    with TestClient(create_app(url, secure_cookies=secure), base_url=base) as client:
        page = client.get("/login").text
        assert ("<code>--insecure-cookies</code>" in page) is warned
        assert ("class=warning role=alert" in page) is warned


def test_the_start_banner_mentions_insecure_cookies() -> None:
    secure = demo.banner("0.0.0.0", 8000, DEMO_USERS, secure_cookies=True)
    assert "--insecure-cookies" in secure and "alice / wonderland" in secure
    assert "--insecure-cookies" not in demo.banner(
        "0.0.0.0", 8000, DEMO_USERS, secure_cookies=False
    )


def test_keep_me_signed_in_chooses_persistent_cookies(url: str) -> None:
    with TestClient(create_app(url), base_url=BASE) as client:
        page = client.get("/login").text
        assert "<input type=checkbox name=remember value=on> Keep me signed in" in page
        for remember, persistent in (({}, False), ({"remember": "on"}, True)):
            client.cookies.clear()
            answer = client.post(
                "/login",
                data={"username": "bob", "password": DEMO_USERS["bob"], **remember},
                follow_redirects=False,
            )
            cookies = answer.headers.get_list("set-cookie")
            access = next(c for c in cookies if c.startswith("ss_access="))
            assert ("Max-Age=" in access) is persistent
            kept = "yes, across browser restarts" if persistent else "no: ends when the browser"
            assert kept in client.get("/dashboard").text


def test_signing_out_every_other_device_asks_for_the_password(url: str) -> None:
    """The step-up before "sign out everywhere": a wrong password revokes nothing."""
    with TestClient(create_app(url, confirm_after=0), base_url=BASE) as client:
        laptop, phone = two_devices(client)
        use(client, laptop)
        dashboard = client.get("/dashboard").text
        assert "Confirm your password first." in dashboard
        assert "name=password type=password" in dashboard.split("id=confirm-others")[1]
        token = {"csrf_token": csrf(client)}
        for attempt in ({}, {"password": "guess"}):
            refused = client.post("/devices/signout-others", data={**token, **attempt})
            assert refused.status_code == 400 and "Wrong password." in refused.text
            assert refused.text.count("name=password type=password") == 1
        use(client, phone, PHONE_UA)
        assert client.get("/api/me").status_code == 200  # nothing was revoked
        use(client, laptop)
        before = client.get("/api/me")
        done = client.post(
            "/devices/signout-others", data={**token, "password": DEMO_USERS["alice"]}
        )
        assert done.status_code == 200 and "Signed out every other device (1 session)." in done.text
        assert before.status_code == 200
        use(client, phone, PHONE_UA)
        assert client.get("/api/me").json()["reason"] == "revoked"


def test_the_password_step_up_is_rate_limited_as_the_login_is(url: str) -> None:
    with TestClient(create_app(url, confirm_after=0), base_url=BASE) as client:
        laptop, phone = two_devices(client)
        use(client, laptop)
        token = {"csrf_token": csrf(client)}
        for _ in range(3):  # two sign-ins already counted against alice
            wrong = client.post("/devices/signout-others", data={**token, "password": "guess"})
            assert wrong.status_code == 400
        right = {**token, "password": DEMO_USERS["alice"]}
        refused = client.post("/devices/signout-others", data=right)
        assert refused.status_code == 429 and "Too many attempts" in refused.text
        assert 1 <= int(refused.headers["retry-after"]) <= 12
        use(client, phone, PHONE_UA)
        assert client.get("/api/me").status_code == 200  # nothing was revoked


def test_a_recent_sign_in_signs_out_the_others_without_asking(url: str) -> None:
    with TestClient(create_app(url), base_url=BASE) as client:
        laptop, _ = two_devices(client)
        use(client, laptop)
        page = client.get("/dashboard").text
        assert "Confirm your password first." not in page
        done = client.post("/devices/signout-others", data={"csrf_token": csrf(client)})
        assert "Signed out every other device (1 session)." in done.text


def test_a_new_device_is_flagged_and_the_history_says_what_happened(url: str) -> None:
    with TestClient(create_app(url, confirm_after=0), base_url=BASE) as client:
        client.headers["user-agent"] = LAPTOP_UA
        login = {"username": "alice", "password": DEMO_USERS["alice"]}
        first = client.post("/login", data=login).text  # follows to the dashboard
        assert re.search(r"New sign-in: \w+ on \w+ is a new device for alice\.", first)
        assert first.count("<span class='badge new'>new device</span>") == 1
        device = next(c.value for c in client.cookies.jar if c.name == "ss_device")
        use(client, {"ss_device": str(device)})  # signed out, the same browser
        again = client.post("/login", data=login).text
        assert "Signed in as <b id=user>alice</b>" in again
        assert "New sign-in" not in again
        laptop = {c.name: str(c.value) for c in client.cookies.jar if c.name != "ss_notice"}
        client.cookies.clear()
        client.headers["user-agent"] = PHONE_UA
        assert "is a new device for alice" in client.post("/login", data=login).text
        use(client, laptop)
        done = client.post(
            "/devices/signout-others",
            data={"csrf_token": csrf(client), "password": DEMO_USERS["alice"]},
        ).text
        history = done.split("<h3>Account history</h3>")[1].split("</ul>")[0]
        lines = [re.sub(r" <code>.*", "", x) for x in re.findall(r"<li>(.*?), <time", history)]
        assert lines[:2] == ["Signed out everywhere"] * 2  # the phone and the older laptop session
        assert lines[2] == "Confirmed it is you (pwd, level 1)"
        assert sum(x.startswith("Signed in on <b>") for x in lines) == 3
