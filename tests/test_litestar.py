"""Litestar integration through Litestar's test client against a real server.

The Starlette suite's cases on the Litestar middleware and guards: 401 shapes (RFC 6750,
expired vs revoked vs invalid), login/refresh/logout with cookies, CSRF, degraded answers
with the server killed, the WebSocket Origin rule, and the guards without the middleware.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import pytest
from litestar import Litestar, Request, Response, get, post, websocket
from litestar.connection import WebSocket
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import TestClient

from sessionstore import AsyncSessionStore, Config, Device, Keyring, Principal, SessionStore
from sessionstore.errors import InvalidToken
from sessionstore.integrations import AuthState
from sessionstore.integrations.litestar import SessionAuth, principal_of
from sessionstore.testing import LocalServer
from sessionstore.tokens import issue_access_token
from web_support import LAPTOP_UA, PHONE_UA, admin_fixture, server_fixtures

PHONE = Device(
    id="phone-1",
    name="Pixel",
    user_agent="Mozilla/5.0 (Linux; Android 14) Chrome/120.0",
    ip="10.0.0.7",
)
SECRET = secrets.token_bytes(32)
BASE = "https://testserver.local"  # Secure cookies only travel over https
WS = "wss://testserver.local/ws"  # and wss
INVALID = {
    "error": "invalid_token",
    "error_description": "The access token is invalid",
    "reason": "invalid",
}  # word for word what the Flask and Starlette suites expect

server, url = server_fixtures("litestar")
Req = Request[Principal | None, AuthState, Any]


admin = admin_fixture()


def make_app(
    url: str, keyring: Keyring, config: Config | None = None, *, middleware: bool = True
) -> Litestar:
    store = AsyncSessionStore.from_url(url, keyring=keyring, config=config)
    auth = SessionAuth(store, csrf_secret=SECRET)

    @get("/me", guards=[auth.require_principal])
    async def me(request: Req) -> dict[str, Any]:
        principal = request.user
        assert principal is not None and principal_of(request) is principal
        return {"user": principal.user_id, "degraded": principal.degraded}

    @post("/transfer", guards=[auth.require_live], status_code=200)
    async def transfer(request: Req) -> dict[str, Any]:
        assert request.user is not None
        return {"user": request.user.user_id, "done": True}

    @get("/whoami")
    async def whoami(request: Req) -> dict[str, Any]:
        state = request.auth
        return {"user": request.user and request.user.user_id, "cookie": state.from_cookie}

    @post("/login", status_code=200)
    async def login() -> Response[dict[str, str]]:
        pair = await store.login("alice", device=PHONE)
        response = Response({"session": pair.session_id})
        auth.set_login_cookies(response, pair)
        return response

    @post("/auth/refresh", status_code=200)
    async def refresh(request: Req) -> Response[dict[str, str]]:
        response = Response({"session": ""})
        pair = await auth.refresh(request, response)
        response.content = {"session": pair.session_id}
        return response

    @post(["/signout", "/auth/refresh/signout"], status_code=200)
    async def signout(request: Req) -> Response[dict[str, bool]]:
        response = Response({"revoked": False})
        response.content = {"revoked": await auth.sign_out(request, response)}
        return response

    @websocket("/ws")
    async def feed(socket: WebSocket[Any, Any, Any]) -> None:
        await socket.accept()
        user = principal_of(socket)
        await socket.send_json({"user": user.user_id if user else None})
        await socket.close()

    handlers = [me, transfer, login, refresh, signout, feed]
    if middleware:
        handlers.append(whoami)  # request.user/auth exist only where something set them
    return Litestar(
        handlers,
        on_app_init=[auth.on_app_init] if middleware else [],
        exception_handlers={} if middleware else auth.exception_handlers,
        on_shutdown=[store.close],  # in the loop that opened its connections
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "User-Agent": PHONE.user_agent}


def challenge(response: Any) -> str:
    return str(response.headers["www-authenticate"])


def client_of(app: Litestar) -> TestClient[Litestar]:
    return TestClient(app, base_url=BASE)


def test_bearer_token_sets_request_user_and_auth(
    url: str, keyring: Keyring, admin: SessionStore
) -> None:
    pair = admin.login("alice", device=PHONE)
    with client_of(make_app(url, keyring)) as client:
        answer = client.get("/me", headers=bearer(pair.access_token))
        assert answer.status_code == 200
        assert answer.json() == {"user": "alice", "degraded": False}
        who = client.get("/whoami", headers=bearer(pair.access_token)).json()
        assert who == {"user": "alice", "cookie": False}
        assert client.get("/whoami").json() == {"user": None, "cookie": False}


@pytest.mark.parametrize("middleware", [True, False])
def test_401_shapes_tell_missing_invalid_revoked_and_expired_apart(
    url: str, keyring: Keyring, admin: SessionStore, middleware: bool
) -> None:
    with client_of(make_app(url, keyring, middleware=middleware)) as client:
        missing = client.get("/me")
        assert missing.status_code == 401
        assert challenge(missing) == 'Bearer realm="api"'  # no error code without credentials
        assert missing.json() == {
            "error": "invalid_request",
            "error_description": "Authentication required",
            "reason": "missing",
        }

        malformed = client.get("/me", headers={"Authorization": "Bearer two words"})
        assert malformed.status_code == 400
        assert 'error="invalid_request"' in challenge(malformed)

        invalid = client.get("/me", headers=bearer("abc.def.ghi"))
        assert invalid.status_code == 401
        assert invalid.headers["content-type"] == "application/json"
        assert invalid.json() == INVALID
        assert challenge(invalid) == (
            'Bearer realm="api", error="invalid_token", '
            'error_description="The access token is invalid"'
        )

        pair = admin.login("alice", device=PHONE)
        admin.revoke("alice", pair.session_id)
        revoked = client.get("/me", headers=bearer(pair.access_token))
        assert revoked.status_code == 401 and revoked.json()["reason"] == "revoked"
        assert 'error_description="The session was revoked"' in challenge(revoked)

        live = admin.login("alice", device=PHONE)
        old, _ = issue_access_token(
            keyring,
            user_id="alice",
            session_id=live.session_id,
            claims={},
            config=Config(),
            now=time.time() - 3600,
        )
        expired = client.get("/me", headers=bearer(old))
        assert expired.status_code == 401 and expired.json()["reason"] == "expired"
        assert 'error_description="The access token expired"' in challenge(expired)


def test_device_binding_gets_the_request_ip_and_user_agent(
    url: str, keyring: Keyring, admin: SessionStore
) -> None:
    pair = admin.login("alice", device=PHONE)
    # A session with no IP recorded is checked on its browser alone: the request's own
    # User-Agent must reach validation (a missing one is a mismatch).
    laptop = admin.login("alice", device=Device(id="laptop", user_agent=LAPTOP_UA))
    with client_of(make_app(url, keyring, Config(device_binding="enforce"))) as client:
        # The test client's address is "testclient", never the session's 10.0.0.7.
        answer = client.get("/me", headers=bearer(pair.access_token))
        same = client.get("/me", headers=bearer(laptop.access_token) | {"User-Agent": LAPTOP_UA})
        other = client.get("/me", headers=bearer(laptop.access_token) | {"User-Agent": PHONE_UA})
    assert answer.status_code == 401 and answer.json()["reason"] == "device"
    assert same.status_code == 200
    assert other.status_code == 401 and other.json()["reason"] == "device"


def test_login_cookies_carry_the_safe_flags(url: str, keyring: Keyring) -> None:
    with client_of(make_app(url, keyring)) as client:
        answer = client.post("/login")
    cookies = {c.split("=", 1)[0]: c for c in answer.headers.get_list("set-cookie")}
    access, refresh, csrf = cookies["ss_access"], cookies["ss_refresh"], cookies["ss_csrf"]
    for flag in ("HttpOnly", "Secure", "SameSite=strict", "Path=/;"):
        assert flag in access
    assert "Path=/auth/refresh" in refresh and "HttpOnly" in refresh and "Secure" in refresh
    assert "HttpOnly" not in csrf and "Secure" in csrf and "SameSite=strict" in csrf


@pytest.mark.parametrize("middleware", [True, False])
def test_cookie_auth_needs_the_csrf_token_on_unsafe_requests(
    url: str, keyring: Keyring, middleware: bool
) -> None:
    with client_of(make_app(url, keyring, middleware=middleware)) as client:
        client.post("/login")
        assert client.get("/me").json()["user"] == "alice"  # safe method: no token needed
        refused = client.post("/transfer")
        assert refused.status_code == 403 and refused.json()["reason"] == "csrf"
        token = client.cookies["ss_csrf"]
        assert client.post("/transfer", headers={"X-CSRF-Token": "x" + token}).status_code == 403
        ok = client.post("/transfer", headers={"X-CSRF-Token": token})
        assert ok.status_code == 200 and ok.json()["done"] is True
        assert client.post("/transfer", data={"csrf_token": token}).status_code == 200
        # An attacker able to plant a cookie still cannot forge the session-bound token.
        planted = secrets.token_urlsafe(32)
        client.cookies.set("ss_csrf", planted, domain="testserver.local")
        assert client.post("/transfer", headers={"X-CSRF-Token": planted}).status_code == 403


def test_bearer_auth_needs_no_csrf_token(url: str, keyring: Keyring, admin: SessionStore) -> None:
    pair = admin.login("alice", device=PHONE)
    with client_of(make_app(url, keyring)) as client:
        assert client.post("/transfer", headers=bearer(pair.access_token)).status_code == 200


def test_refresh_rotates_the_cookie_and_reuse_is_refused(url: str, keyring: Keyring) -> None:
    with client_of(make_app(url, keyring)) as client:
        client.post("/login")
        first = client.cookies["ss_refresh"]

        def refresh() -> Any:
            # Still signed in by the access cookie: an unsafe request needs the CSRF token.
            return client.post("/auth/refresh", headers={"X-CSRF-Token": client.cookies["ss_csrf"]})

        assert client.post("/auth/refresh").status_code == 403
        assert refresh().status_code == 200
        assert client.cookies["ss_refresh"] != first
        assert refresh().status_code == 200
        # A stolen copy of the first refresh token, replayed from another client.
        client.cookies.clear()
        client.cookies.set("ss_refresh", first, domain="testserver.local")
        reused = client.post("/auth/refresh")
        assert reused.status_code == 401 and reused.json()["reason"] == "revoked"
        assert "refresh token was reused" in challenge(reused)


def test_sign_out_ends_the_session(url: str, keyring: Keyring, admin: SessionStore) -> None:
    with client_of(make_app(url, keyring)) as client:
        client.post("/login")
        access, refresh = client.cookies["ss_access"], client.cookies["ss_refresh"]
        assert client.post("/signout").status_code == 403  # cookie-authenticated: CSRF first
        out = client.post("/signout", headers={"X-CSRF-Token": client.cookies["ss_csrf"]})
        assert out.status_code == 200 and out.json() == {"revoked": True}
        deleted = out.headers.get_list("set-cookie")
        assert len(deleted) == 3 and all("Max-Age=0" in c for c in deleted)
        assert all("Secure" in c and "SameSite=strict" in c for c in deleted)
        after = client.get("/me", headers=bearer(access))
        assert after.status_code == 401 and after.json()["reason"] == "revoked"
    with pytest.raises(InvalidToken):
        admin.refresh(refresh)
    assert admin.sessions("alice") == []


def test_sign_out_by_the_refresh_cookie_alone(
    url: str, keyring: Keyring, admin: SessionStore
) -> None:
    with client_of(make_app(url, keyring)) as client:
        client.post("/login")
        refresh = client.cookies["ss_refresh"]
    with client_of(make_app(url, keyring)) as client:
        client.cookies.set("ss_refresh", refresh[:-2] + "AA", domain="testserver.local")
        assert client.post("/auth/refresh/signout").json() == {"revoked": False}
        client.cookies.set("ss_refresh", refresh, domain="testserver.local")
        assert client.post("/auth/refresh/signout").json() == {"revoked": True}
    assert admin.sessions("alice") == []


def test_degraded_principal_is_refused_on_fresh_routes(
    fault_server: LocalServer, keyring: Keyring
) -> None:
    with SessionStore.from_url(fault_server.url, keyring=keyring) as admin:
        pair = admin.login("alice", device=PHONE)
    with client_of(make_app(fault_server.url, keyring)) as client:
        # The app's store reaches Redis first: one that never did denies while it is down.
        up = client.get("/me", headers=bearer(pair.access_token))
        assert up.status_code == 200 and up.json() == {"user": "alice", "degraded": False}
        fault_server.kill()
        me = client.get("/me", headers=bearer(pair.access_token))
        assert me.status_code == 200 and me.json() == {"user": "alice", "degraded": True}
        refused = client.post("/transfer", headers=bearer(pair.access_token))
        assert refused.status_code == 503 and refused.json()["reason"] == "degraded"
        assert refused.headers["retry-after"] == "1"
        out = client.post("/signout", headers=bearer(pair.access_token))
        assert out.status_code == 503 and out.json()["reason"] == "unavailable"
        assert "set-cookie" not in out.headers  # a sign-out that did not happen


@pytest.mark.parametrize("middleware", [True, False])
def test_store_unavailable_is_503_not_401(
    fault_server: LocalServer, keyring: Keyring, middleware: bool
) -> None:
    with SessionStore.from_url(fault_server.url, keyring=keyring) as admin:
        pair = admin.login("alice", device=PHONE)
    app = make_app(fault_server.url, keyring, Config(fallback="deny"), middleware=middleware)
    with client_of(app) as client:
        fault_server.kill()
        answer = client.get("/me", headers=bearer(pair.access_token))
        assert answer.status_code == 503 and "www-authenticate" not in answer.headers
        assert answer.headers["retry-after"] == "1"
        assert answer.json()["reason"] == "unavailable"
        login = client.post("/login")  # StoreUnavailable escaping the handler
    assert login.status_code == 503
    assert login.json() == {
        "error": "temporarily_unavailable",
        "error_description": "The session store is unreachable",
        "reason": "unavailable",
    }


def test_cookie_websocket_needs_the_pages_origin(url: str, keyring: Keyring) -> None:
    with client_of(make_app(url, keyring)) as client:
        client.post("/login")
        same = {"Origin": BASE}
        with client.websocket_connect(WS, headers=same) as ws:
            assert ws.receive_json() == {"user": "alice"}
        for headers in (
            {"Origin": "https://evil.example"},
            {},
            {"Origin": "http://testserver.local"},
        ):
            with (
                pytest.raises(WebSocketDisconnect) as closed,
                client.websocket_connect(WS, headers=headers),
            ):
                pass
            assert closed.value.code == 1008
            assert closed.value.detail == "Cross-origin WebSocket refused"


def test_bearer_websocket_needs_no_origin(url: str, keyring: Keyring, admin: SessionStore) -> None:
    pair = admin.login("alice", device=PHONE)
    with client_of(make_app(url, keyring)) as client:
        headers = {"Authorization": f"Bearer {pair.access_token}"}
        with client.websocket_connect(WS, headers=headers) as ws:
            assert ws.receive_json() == {"user": "alice"}


def test_excluded_routes_skip_the_middleware_and_guards_still_check(
    url: str, keyring: Keyring, admin: SessionStore
) -> None:
    store = AsyncSessionStore.from_url(url, keyring=keyring)
    auth = SessionAuth(store, csrf_secret=SECRET, exclude=["^/public"])

    @get("/public/health")
    async def health(request: Req) -> dict[str, bool]:
        return {"authenticated": "auth" in request.scope}

    @get("/open", exclude_from_auth=True, guards=[auth.require_principal])
    async def guarded(request: Req) -> dict[str, str | None]:
        return {"user": request.user.user_id if request.user else None}

    app = Litestar([health, guarded], on_app_init=[auth.on_app_init], on_shutdown=[store.close])
    pair = admin.login("alice", device=PHONE)
    with client_of(app) as client:
        assert client.get("/public/health").json() == {"authenticated": False}
        assert client.get("/open").json()["reason"] == "missing"
        assert client.get("/open", headers=bearer(pair.access_token)).json() == {"user": "alice"}
