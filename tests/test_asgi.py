"""Starlette/FastAPI integration through a real HTTP test client against a real server.

401 shapes (RFC 6750, expired vs revoked vs invalid), cookie flags, CSRF, degraded-route
refusal, refresh rotation, device binding fed with the request's IP and User-Agent.
"""

import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from sessionstore import AsyncSessionStore, Config, Device, Keyring, Principal, SessionStore
from sessionstore.errors import InvalidToken
from sessionstore.integrations.starlette import SessionAuth, SessionAuthMiddleware, principal_of
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
BASE = "https://testserver"  # Secure cookies only travel over https, even in a test client

server, url = server_fixtures("asgi")


admin = admin_fixture()


def make_app(
    url: str,
    keyring: Keyring,
    config: Config | None = None,
    *,
    middleware: bool = True,
    handlers: bool = True,
) -> FastAPI:
    store = AsyncSessionStore.from_url(url, keyring=keyring, config=config)
    auth = SessionAuth(store, csrf_secret=SECRET)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await store.close()  # in the loop that opened its connections

    stack = [Middleware(SessionAuthMiddleware, auth=auth)] if middleware else []
    # The README's one line: refusals in the integration's JSON shape, StoreUnavailable 503.
    app = FastAPI(
        middleware=stack,
        lifespan=lifespan,
        exception_handlers=auth.exception_handlers if handlers else None,
    )
    Current = Annotated[Principal, Depends(auth.require_principal)]
    Fresh = Annotated[Principal, Depends(auth.require_live)]

    @app.get("/me")
    async def me(principal: Current) -> dict[str, Any]:
        return {"user": principal.user_id, "degraded": principal.degraded}

    @app.post("/transfer")
    async def transfer(principal: Fresh) -> dict[str, Any]:
        return {"user": principal.user_id, "done": True}

    @app.get("/whoami")
    async def whoami(request: Request) -> dict[str, Any]:
        return {"authenticated": request.user.is_authenticated, "scopes": request.auth.scopes}

    @app.post("/login")
    async def login(response: Response) -> dict[str, Any]:
        pair = await store.login("alice", device=PHONE)
        auth.set_login_cookies(response, pair)
        return {"session": pair.session_id}

    @app.post("/auth/refresh")
    async def refresh(request: Request, response: Response) -> dict[str, Any]:
        pair = await auth.refresh(request, response)
        return {"session": pair.session_id}

    @app.post("/signout")
    @app.post("/auth/refresh/signout")  # reached by the refresh cookie too
    async def signout(request: Request, response: Response) -> dict[str, Any]:
        return {"revoked": await auth.sign_out(request, response)}

    return app


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "User-Agent": PHONE.user_agent}


def challenge(response: Any) -> str:
    return str(response.headers["www-authenticate"])


def test_bearer_token_attaches_the_principal(
    url: str, keyring: Keyring, admin: SessionStore
) -> None:
    pair = admin.login("alice", device=PHONE)
    with TestClient(make_app(url, keyring), base_url=BASE) as client:
        answer = client.get("/me", headers=bearer(pair.access_token))
        assert answer.status_code == 200
        assert answer.json() == {"user": "alice", "degraded": False}
        who = client.get("/whoami", headers=bearer(pair.access_token)).json()
        assert who == {"authenticated": True, "scopes": ["authenticated", "live", "fresh"]}
        assert client.get("/whoami").json() == {"authenticated": False, "scopes": []}


def test_401_shapes_tell_missing_invalid_revoked_and_expired_apart(
    url: str, keyring: Keyring, admin: SessionStore
) -> None:
    with TestClient(make_app(url, keyring), base_url=BASE) as client:
        missing = client.get("/me")
        assert missing.status_code == 401
        assert challenge(missing) == 'Bearer realm="api"'  # no error code without credentials

        malformed = client.get("/me", headers={"Authorization": "Bearer two words"})
        assert malformed.status_code == 400
        assert 'error="invalid_request"' in challenge(malformed)

        invalid = client.get("/me", headers=bearer("abc.def.ghi"))
        assert invalid.status_code == 401
        assert challenge(invalid) == (
            'Bearer realm="api", error="invalid_token", '
            'error_description="The access token is invalid"'
        )

        pair = admin.login("alice", device=PHONE)
        admin.revoke("alice", pair.session_id)
        revoked = client.get("/me", headers=bearer(pair.access_token))
        assert revoked.status_code == 401
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
        assert expired.status_code == 401
        assert 'error="invalid_token"' in challenge(expired)
        assert 'error_description="The access token expired"' in challenge(expired)


def test_session_expiry_is_told_apart_from_revocation(url: str, keyring: Keyring) -> None:
    config = Config(idle_ttl=1, absolute_ttl=60, access_ttl=60)
    with SessionStore.from_url(url, keyring=keyring, config=config) as admin:
        pair = admin.login("alice", device=PHONE)
        with TestClient(make_app(url, keyring, config), base_url=BASE) as client:
            time.sleep(1.1)  # past the 1 s idle deadline (the server's clock decides)
            answer = client.get("/me", headers=bearer(pair.access_token))
    assert answer.status_code == 401
    assert 'error_description="The session expired"' in challenge(answer)


def test_device_binding_gets_the_request_ip_and_user_agent(
    url: str, keyring: Keyring, admin: SessionStore
) -> None:
    config = Config(device_binding="enforce")
    pair = admin.login("alice", device=PHONE)
    # A session with no IP recorded is checked on its browser alone: the request's own
    # User-Agent must reach validation (a missing one is a mismatch).
    laptop = admin.login("alice", device=Device(id="laptop", user_agent=LAPTOP_UA))
    with TestClient(make_app(url, keyring, config), base_url=BASE) as client:
        # The test client's address is "testclient", never the session's 10.0.0.7.
        answer = client.get("/me", headers=bearer(pair.access_token))
        same = client.get("/me", headers=bearer(laptop.access_token) | {"User-Agent": LAPTOP_UA})
        other = client.get("/me", headers=bearer(laptop.access_token) | {"User-Agent": PHONE_UA})
    assert answer.status_code == 401
    assert "does not match the session's device" in challenge(answer)
    assert same.status_code == 200
    assert other.status_code == 401 and other.json()["reason"] == "device"


def test_login_cookies_carry_the_safe_flags(url: str, keyring: Keyring) -> None:
    with TestClient(make_app(url, keyring), base_url=BASE) as client:
        answer = client.post("/login")
    cookies = {c.split("=", 1)[0]: c for c in answer.headers.get_list("set-cookie")}
    access, refresh, csrf = cookies["ss_access"], cookies["ss_refresh"], cookies["ss_csrf"]
    for flag in ("HttpOnly", "Secure", "SameSite=strict", "Path=/;"):
        assert flag in access
    assert "Path=/auth/refresh" in refresh and "HttpOnly" in refresh and "Secure" in refresh
    assert "SameSite=strict" in refresh
    assert "HttpOnly" not in csrf and "Secure" in csrf and "SameSite=strict" in csrf


def test_cookie_auth_needs_the_csrf_token_on_unsafe_requests(url: str, keyring: Keyring) -> None:
    with TestClient(make_app(url, keyring), base_url=BASE) as client:
        client.post("/login")
        assert client.get("/me").json()["user"] == "alice"  # safe method: no token needed
        refused = client.post("/transfer")
        assert refused.status_code == 403
        assert refused.json()["reason"] == "csrf"
        token = client.cookies["ss_csrf"]
        assert client.post("/transfer", headers={"X-CSRF-Token": "x" + token}).status_code == 403
        ok = client.post("/transfer", headers={"X-CSRF-Token": token})
        assert ok.status_code == 200 and ok.json()["done"] is True
        form = client.post("/transfer", data={"csrf_token": token})
        assert form.status_code == 200
        # An attacker able to plant a cookie still cannot forge the session-bound token.
        planted = secrets.token_urlsafe(32)
        client.cookies.set("ss_csrf", planted, domain="testserver.local")
        assert client.post("/transfer", headers={"X-CSRF-Token": planted}).status_code == 403


def test_bearer_auth_needs_no_csrf_token(url: str, keyring: Keyring, admin: SessionStore) -> None:
    pair = admin.login("alice", device=PHONE)
    with TestClient(make_app(url, keyring), base_url=BASE) as client:
        assert client.post("/transfer", headers=bearer(pair.access_token)).status_code == 200


def test_the_dependency_works_without_the_middleware(
    url: str, keyring: Keyring, admin: SessionStore
) -> None:
    pair = admin.login("alice", device=PHONE)
    with TestClient(make_app(url, keyring, middleware=False), base_url=BASE) as client:
        assert client.get("/me", headers=bearer(pair.access_token)).json()["user"] == "alice"
        assert client.get("/me").status_code == 401
        client.post("/login")
        assert client.post("/transfer").status_code == 403  # CSRF checked here too
        token = client.cookies["ss_csrf"]
        assert client.post("/transfer", data={"csrf_token": token}).status_code == 200


def test_refresh_rotates_the_cookie_and_reuse_is_refused(url: str, keyring: Keyring) -> None:
    with TestClient(make_app(url, keyring), base_url=BASE) as client:
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
        client.cookies.set("ss_refresh", first)
        reused = client.post("/auth/refresh")
        assert reused.status_code == 401
        assert "refresh token was reused" in challenge(reused)


def test_degraded_principal_is_refused_on_fresh_routes(
    fault_server: LocalServer, keyring: Keyring
) -> None:
    with SessionStore.from_url(fault_server.url, keyring=keyring) as admin:
        pair = admin.login("alice", device=PHONE)
    with TestClient(make_app(fault_server.url, keyring), base_url=BASE) as client:
        # The app's store reaches Redis first: one that never did denies while it is down.
        up = client.get("/me", headers=bearer(pair.access_token))
        assert up.status_code == 200 and up.json() == {"user": "alice", "degraded": False}
        fault_server.kill()
        me = client.get("/me", headers=bearer(pair.access_token))
        assert me.status_code == 200 and me.json() == {"user": "alice", "degraded": True}
        who = client.get("/whoami", headers=bearer(pair.access_token)).json()
        assert who["scopes"] == ["authenticated"]  # no "fresh" while degraded
        refused = client.post("/transfer", headers=bearer(pair.access_token))
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"


def test_store_unavailable_is_503_not_401(fault_server: LocalServer, keyring: Keyring) -> None:
    with SessionStore.from_url(fault_server.url, keyring=keyring) as admin:
        pair = admin.login("alice", device=PHONE)
    config = Config(fallback="deny")
    with TestClient(make_app(fault_server.url, keyring, config), base_url=BASE) as client:
        fault_server.kill()
        answer = client.get("/me", headers=bearer(pair.access_token))
    assert answer.status_code == 503
    assert "www-authenticate" not in answer.headers
    assert answer.headers["retry-after"] == "1"


def test_plain_starlette_routes(url: str, keyring: Keyring, admin: SessionStore) -> None:
    store = AsyncSessionStore.from_url(url, keyring=keyring)
    auth = SessionAuth(store)

    @requires("fresh")
    async def sensitive(request: Request) -> Response:
        principal = principal_of(request)
        assert principal is not None
        return JSONResponse({"user": principal.user_id})

    async def me(request: Request) -> Response:
        principal = await auth.require_principal(request)
        return JSONResponse({"user": principal.user_id})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await store.close()

    app = Starlette(
        routes=[Route("/sensitive", sensitive), Route("/me", me)],
        middleware=[Middleware(SessionAuthMiddleware, auth=auth)],
        exception_handlers=auth.exception_handlers,
        lifespan=lifespan,
    )
    pair = admin.login("alice", device=PHONE)
    with TestClient(app, base_url=BASE) as client:
        assert client.get("/sensitive", headers=bearer(pair.access_token)).json() == {
            "user": "alice"
        }
        assert client.get("/sensitive").status_code == 403  # Starlette's own @requires
        refused = client.get("/me")
        assert refused.status_code == 401
        assert challenge(refused) == 'Bearer realm="api"'
        assert refused.json()["reason"] == "missing"  # JSON, not Starlette's text/plain


INVALID = {
    "error": "invalid_token",
    "error_description": "The access token is invalid",
    "reason": "invalid",
}  # word for word what tests/test_flask.py expects of Flask


@pytest.mark.parametrize("middleware", [True, False])
def test_refusals_have_the_flask_shape(url: str, keyring: Keyring, middleware: bool) -> None:
    with TestClient(make_app(url, keyring, middleware=middleware), base_url=BASE) as client:
        invalid = client.get("/me", headers=bearer("abc.def.ghi"))
        assert invalid.status_code == 401
        assert invalid.headers["content-type"] == "application/json"
        assert invalid.json() == INVALID
        assert challenge(invalid) == (
            'Bearer realm="api", error="invalid_token", '
            'error_description="The access token is invalid"'
        )
        missing = client.get("/me")
        assert missing.json() == {
            "error": "invalid_request",
            "error_description": "Authentication required",
            "reason": "missing",
        }
        assert challenge(missing) == 'Bearer realm="api"'


@pytest.mark.parametrize("handlers", [True, False])
def test_a_login_while_the_store_is_down_is_503(
    fault_server: LocalServer, keyring: Keyring, handlers: bool
) -> None:
    # handlers=False: the middleware alone turns the escaping StoreUnavailable into 503.
    app = make_app(fault_server.url, keyring, handlers=handlers)
    with TestClient(app, base_url=BASE) as client:
        fault_server.kill()
        answer = client.post("/login")
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "1"
    assert answer.json() == {
        "error": "temporarily_unavailable",
        "error_description": "The session store is unreachable",
        "reason": "unavailable",
    }


def test_sign_out_ends_the_session(url: str, keyring: Keyring, admin: SessionStore) -> None:
    with TestClient(make_app(url, keyring), base_url=BASE) as client:
        client.post("/login")
        access, refresh = client.cookies["ss_access"], client.cookies["ss_refresh"]
        assert client.post("/signout").status_code == 403  # cookie-authenticated: CSRF first
        out = client.post("/signout", headers={"X-CSRF-Token": client.cookies["ss_csrf"]})
        assert out.status_code == 200 and out.json() == {"revoked": True}
        deleted = out.headers.get_list("set-cookie")
        assert len(deleted) == 3 and all("Max-Age=0" in c for c in deleted)
        # Neither a copy of the access token nor one of the refresh token outlives it.
        after = client.get("/me", headers=bearer(access))
        assert after.status_code == 401 and after.json()["reason"] == "revoked"
    with pytest.raises(InvalidToken):
        admin.refresh(refresh)
    assert admin.sessions("alice") == []


def test_sign_out_by_the_refresh_cookie_alone(
    url: str, keyring: Keyring, admin: SessionStore
) -> None:
    with TestClient(make_app(url, keyring), base_url=BASE) as client:
        client.post("/login")
        refresh = client.cookies["ss_refresh"]
    # The access cookie is gone (expired): a route under the refresh path still names the
    # session by the refresh cookie; a forged one names nothing.
    with TestClient(make_app(url, keyring), base_url=BASE) as client:
        client.cookies.set("ss_refresh", refresh[:-2] + "AA", domain="testserver.local")
        assert client.post("/auth/refresh/signout").json() == {"revoked": False}
        client.cookies.set("ss_refresh", refresh, domain="testserver.local")
        assert client.post("/auth/refresh/signout").json() == {"revoked": True}
    assert admin.sessions("alice") == []


def test_sign_out_without_the_store_is_503_and_keeps_the_cookies(
    fault_server: LocalServer, keyring: Keyring
) -> None:
    with SessionStore.from_url(fault_server.url, keyring=keyring) as admin:
        pair = admin.login("alice", device=PHONE)
    with TestClient(make_app(fault_server.url, keyring), base_url=BASE) as client:
        fault_server.kill()
        answer = client.post("/signout", headers=bearer(pair.access_token))  # degraded
    assert answer.status_code == 503 and answer.json()["reason"] == "unavailable"
    assert "set-cookie" not in answer.headers  # a sign-out that did not happen must not look done
