"""Flask integration through Flask's HTTP test client against a real server.

The same behaviour as the Starlette integration: 401 shapes, cookie flags, CSRF,
degraded-route refusal, refresh rotation.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, jsonify, make_response
from flask.testing import FlaskClient

from sessionstore import Config, Device, Keyring, SessionStore
from sessionstore.errors import InvalidToken, StoreUnavailable
from sessionstore.integrations.flask import SessionAuth
from sessionstore.testing import LocalServer
from sessionstore.tokens import issue_access_token
from web_support import server_fixtures

PHONE = Device(id="phone-1", name="Pixel", user_agent="Mozilla/5.0 (Linux; Android 14)")

server, url = server_fixtures("flask")


def make_app(store: SessionStore) -> Flask:
    app = Flask(__name__)
    auth = SessionAuth(app, store=store, csrf_secret=secrets.token_bytes(32))

    @app.get("/me")
    @auth.required
    def me() -> Any:
        principal = auth.principal
        assert principal is not None
        return jsonify(user=principal.user_id, degraded=principal.degraded)

    @app.post("/transfer")
    @auth.required(live=True)
    def transfer() -> Any:
        return jsonify(done=True)

    @app.post("/login")
    def login() -> Any:
        pair = store.login("alice", device=PHONE)
        response = make_response(jsonify(session=pair.session_id))
        auth.set_login_cookies(response, pair)
        return response

    @app.post("/auth/refresh")
    def refresh() -> Any:
        response = make_response(jsonify(ok=True))
        auth.refresh(response)
        return response

    @app.post("/logout")
    @auth.required
    def logout() -> Any:
        principal = auth.require_principal()
        store.revoke(principal.user_id, principal.session_id)
        response = make_response(jsonify(ok=True))
        auth.clear_cookies(response)
        return response

    @app.post("/signout")
    def signout() -> Any:
        response = make_response(jsonify(revoked=None))
        response.set_data(jsonify(revoked=auth.sign_out(response)).get_data())
        return response

    return app


@pytest.fixture
def store(url: str, keyring: Keyring) -> Iterator[SessionStore]:
    with SessionStore.from_url(url, keyring=keyring) as made:
        yield made


@pytest.fixture
def client(store: SessionStore) -> FlaskClient:
    return make_app(store).test_client()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_bearer_token_and_401_shapes(
    client: FlaskClient, store: SessionStore, keyring: Keyring
) -> None:
    pair = store.login("alice", device=PHONE)
    assert client.get("/me", headers=bearer(pair.access_token)).json == {
        "user": "alice",
        "degraded": False,
    }
    missing = client.get("/me")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    invalid = client.get("/me", headers=bearer("abc.def.ghi"))
    assert invalid.status_code == 401
    assert invalid.headers["WWW-Authenticate"] == (
        'Bearer realm="api", error="invalid_token", error_description="The access token is invalid"'
    )
    assert invalid.json == {
        "error": "invalid_token",
        "error_description": "The access token is invalid",
        "reason": "invalid",
    }
    old, _ = issue_access_token(
        keyring,
        user_id="alice",
        session_id=pair.session_id,
        claims={},
        config=Config(),
        now=time.time() - 3600,
    )
    expired = client.get("/me", headers=bearer(old))
    assert expired.status_code == 401 and expired.json is not None
    assert expired.json["reason"] == "expired"
    assert 'error_description="The access token expired"' in expired.headers["WWW-Authenticate"]
    store.revoke("alice", pair.session_id)
    revoked = client.get("/me", headers=bearer(pair.access_token))
    assert revoked.status_code == 401 and revoked.json is not None
    assert revoked.json["reason"] == "revoked"
    malformed = client.get("/me", headers={"Authorization": "Bearer a b"})
    assert malformed.status_code == 400
    assert 'error="invalid_request"' in malformed.headers["WWW-Authenticate"]


def test_cookie_flags_csrf_and_logout(client: FlaskClient) -> None:
    answer = client.post("/login")
    cookies = {c.split("=", 1)[0]: c for c in answer.headers.getlist("Set-Cookie")}
    for flag in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/;"):
        assert flag in cookies["ss_access"]
    assert "Path=/auth/refresh" in cookies["ss_refresh"] and "HttpOnly" in cookies["ss_refresh"]
    assert "HttpOnly" not in cookies["ss_csrf"] and "Secure" in cookies["ss_csrf"]

    assert client.get("/me").json == {"user": "alice", "degraded": False}
    refused = client.post("/transfer")
    assert refused.status_code == 403 and refused.json is not None
    assert refused.json["reason"] == "csrf"
    cookie = client.get_cookie("ss_csrf")
    assert cookie is not None
    assert client.post("/transfer", headers={"X-CSRF-Token": cookie.value + "x"}).status_code == 403
    assert client.post("/transfer", headers={"X-CSRF-Token": cookie.value}).status_code == 200
    assert client.post("/transfer", data={"csrf_token": cookie.value}).status_code == 200

    out = client.post("/logout", headers={"X-CSRF-Token": cookie.value})
    assert out.status_code == 200
    assert all("Max-Age=0" in c for c in out.headers.getlist("Set-Cookie"))
    assert client.get("/me").status_code == 401


def test_refresh_rotates_and_reuse_is_refused(client: FlaskClient) -> None:
    client.post("/login")
    first = client.get_cookie("ss_refresh", path="/auth/refresh")
    csrf = client.get_cookie("ss_csrf")
    assert first is not None and csrf is not None
    headers = {"X-CSRF-Token": csrf.value}
    assert client.post("/auth/refresh", headers=headers).status_code == 200
    assert client.post("/auth/refresh", headers=headers).status_code == 200
    fresh = client.get_cookie("ss_refresh", path="/auth/refresh")
    assert fresh is not None and fresh.value != first.value
    client.delete_cookie("ss_access")
    client.set_cookie("ss_refresh", first.value, path="/auth/refresh")
    reused = client.post("/auth/refresh")
    assert reused.status_code == 401 and reused.json is not None
    assert reused.json["reason"] == "revoked"


def test_degraded_principal_is_refused_on_fresh_routes(
    fault_server: LocalServer, keyring: Keyring
) -> None:
    with SessionStore.from_url(fault_server.url, keyring=keyring) as store:
        pair = store.login("alice", device=PHONE)
        client = make_app(store).test_client()
        fault_server.kill()
        me = client.get("/me", headers=bearer(pair.access_token))
        assert me.status_code == 200 and me.json == {"user": "alice", "degraded": True}
        refused = client.post("/transfer", headers=bearer(pair.access_token))
        assert refused.status_code == 503 and refused.json is not None
        assert refused.json["reason"] == "degraded"
        assert refused.headers["Retry-After"] == "1"


def test_store_unavailable_is_503(fault_server: LocalServer, keyring: Keyring) -> None:
    config = Config(fallback="deny")
    with SessionStore.from_url(fault_server.url, keyring=keyring, config=config) as store:
        pair = store.login("alice", device=PHONE)
        client = make_app(store).test_client()
        fault_server.kill()
        answer = client.get("/me", headers=bearer(pair.access_token))
    assert answer.status_code == 503 and answer.json is not None
    assert answer.json["reason"] == "unavailable"
    assert "WWW-Authenticate" not in answer.headers


def test_device_binding_gets_the_request_ip(url: str, keyring: Keyring) -> None:
    config = Config(device_binding="enforce")
    device = Device(id="laptop", ip="10.0.0.8")
    with SessionStore.from_url(url, keyring=keyring, config=config) as store:
        pair = store.login("alice", device=device)
        client = make_app(store).test_client()
        near = client.get(
            "/me", headers=bearer(pair.access_token), environ_base={"REMOTE_ADDR": "10.0.0.99"}
        )
        assert near.status_code == 200  # the same /24
        far = client.get(
            "/me", headers=bearer(pair.access_token), environ_base={"REMOTE_ADDR": "192.0.2.1"}
        )
        assert far.status_code == 401 and far.json is not None
        assert far.json["reason"] == "device"


def test_a_login_while_the_store_is_down_is_503(
    fault_server: LocalServer, keyring: Keyring
) -> None:
    with SessionStore.from_url(fault_server.url, keyring=keyring) as store:
        client = make_app(store).test_client()
        fault_server.kill()
        answer = client.post("/login")
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "1"
    assert answer.json == {
        "error": "temporarily_unavailable",
        "error_description": "The session store is unreachable",
        "reason": "unavailable",
    }


def test_the_apps_own_store_unavailable_handler_wins(
    fault_server: LocalServer, keyring: Keyring
) -> None:
    with SessionStore.from_url(fault_server.url, keyring=keyring) as store:
        app = Flask(__name__)
        app.register_error_handler(StoreUnavailable, lambda err: ("down", 599))
        SessionAuth(app, store=store)

        @app.post("/login")
        def login() -> Any:
            return jsonify(session=store.login("alice", device=PHONE).session_id)

        client = app.test_client()
        fault_server.kill()
        assert client.post("/login").status_code == 599


def test_sign_out_ends_the_session(client: FlaskClient, store: SessionStore) -> None:
    client.post("/login")
    access = client.get_cookie("ss_access")
    refresh = client.get_cookie("ss_refresh", path="/auth/refresh")
    csrf = client.get_cookie("ss_csrf")
    assert access is not None and refresh is not None and csrf is not None
    assert client.post("/signout").status_code == 403  # cookie-authenticated: CSRF first
    out = client.post("/signout", headers={"X-CSRF-Token": csrf.value})
    assert out.status_code == 200 and out.json == {"revoked": True}
    deleted = out.headers.getlist("Set-Cookie")
    assert len(deleted) == 3 and all("Max-Age=0" in c for c in deleted)
    # Neither a copy of the access token nor one of the refresh token outlives it.
    after = client.get("/me", headers=bearer(access.value))
    assert after.status_code == 401 and after.json is not None
    assert after.json["reason"] == "revoked"
    with pytest.raises(InvalidToken):
        store.refresh(refresh.value)
    assert store.sessions("alice") == []
