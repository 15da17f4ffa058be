"""The demo web app through a test client: the login page, its rate limiter, sign-outs, API."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from sessionstore.demo_app import DEMO_USERS, create_app
from sessionstore.testing import LocalServer
from web_support import flushed, private_server

BASE = "https://testserver"


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with private_server("demo-app") as srv:
        yield srv


@pytest.fixture
def url(server: LocalServer) -> str:
    return flushed(server)


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
