"""Session-id rotation in the integrations: each one's ``rotate`` moves the request's
session to a new id and sets its cookies the way a login does; the old cookies and tokens
are refused from then on (FastAPI, Flask, Litestar; Django in test_django_sessions)."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from flask import Flask, jsonify, make_response
from litestar import Litestar, Request, post
from litestar import Response as LitestarResponse
from litestar.testing import TestClient as LitestarClient
from starlette.middleware import Middleware
from starlette.requests import Request as StarletteRequest
from starlette.responses import Response as StarletteResponse
from starlette.testclient import TestClient

from sessionstore import (
    AsyncSessionStore,
    Device,
    InvalidToken,
    Keyring,
    RefreshReuseDetected,
    SessionStore,
)
from sessionstore.integrations import flask as flask_auth
from sessionstore.integrations import litestar as litestar_auth
from sessionstore.integrations import starlette as starlette_auth
from web_support import admin_fixture, server_fixtures

PHONE = Device(id="phone-1", name="Pixel", user_agent="Mozilla/5.0 (Linux; Android 14)")
SECRET = secrets.token_bytes(32)
BASE = "https://testserver.local"  # Secure cookies only travel over https
ADMIN = {"roles": ["admin"]}
COOKIES = ("ss_access", "ss_refresh", "ss_csrf")

server, url = server_fixtures("rotation_web")


admin = admin_fixture()


def fastapi_app(url: str, keyring: Keyring) -> FastAPI:
    store = AsyncSessionStore.from_url(url, keyring=keyring)
    auth = starlette_auth.SessionAuth(store, csrf_secret=SECRET)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await store.close()

    app = FastAPI(
        middleware=[Middleware(starlette_auth.SessionAuthMiddleware, auth=auth)],
        lifespan=lifespan,
        exception_handlers=auth.exception_handlers,
    )

    @app.post("/login")
    async def login(response: StarletteResponse) -> dict[str, Any]:
        pair = await store.login("alice", device=PHONE, claims={"roles": ["user"]})
        auth.set_login_cookies(response, pair)
        return {"session": pair.session_id}

    @app.post("/rotate")
    async def rotate(request: StarletteRequest, response: StarletteResponse) -> dict[str, Any]:
        pair = await auth.rotate(request, response, claims=ADMIN)
        return {"session": pair.session_id}

    return app


def flask_app(store: SessionStore) -> Flask:
    app = Flask(__name__)
    auth = flask_auth.SessionAuth(app, store=store, csrf_secret=SECRET)

    @app.post("/login")
    def login() -> Any:
        pair = store.login("alice", device=PHONE, claims={"roles": ["user"]})
        response = make_response(jsonify(session=pair.session_id))
        auth.set_login_cookies(response, pair)
        return response

    @app.post("/rotate")
    def rotate() -> Any:
        response = make_response(jsonify(session=""))
        pair = auth.rotate(response, claims=ADMIN)
        response.set_data(jsonify(session=pair.session_id).get_data())
        return response

    return app


def litestar_app(url: str, keyring: Keyring) -> Litestar:
    store = AsyncSessionStore.from_url(url, keyring=keyring)
    auth = litestar_auth.SessionAuth(store, csrf_secret=SECRET)

    @post("/login", status_code=200)
    async def login() -> LitestarResponse[dict[str, str]]:
        pair = await store.login("alice", device=PHONE, claims={"roles": ["user"]})
        response = LitestarResponse({"session": pair.session_id})
        auth.set_login_cookies(response, pair)
        return response

    @post("/rotate", status_code=200)
    async def rotate(request: Request[Any, Any, Any]) -> LitestarResponse[dict[str, str]]:
        response = LitestarResponse({"session": ""})
        pair = await auth.rotate(request, response, claims=ADMIN)
        response.content = {"session": pair.session_id}
        return response

    return Litestar([login, rotate], plugins=[auth], on_shutdown=[store.close])


def check_rotation(client: Any, admin: SessionStore) -> None:
    """The same story in every framework: sign in, rotate, and only the new cookies work."""
    login = client.post("/login")
    assert login.status_code == 200
    old_sid = login.json()["session"]
    old = {name: client.cookies[name] for name in COOKIES}
    # Unauthenticated or without the CSRF token (cookie auth): no rotation.
    assert client.post("/rotate").status_code == 403
    answer = client.post("/rotate", headers={"X-CSRF-Token": old["ss_csrf"]})
    assert answer.status_code == 200
    new_sid = answer.json()["session"]
    assert new_sid != old_sid
    set_cookies = answer.headers.get_list("set-cookie")
    assert sorted(c.split("=", 1)[0] for c in set_cookies) == sorted(COOKIES)
    new = {name: client.cookies[name] for name in COOKIES}
    assert all(new[name] != old[name] for name in COOKIES)
    # The new cookies speak for the same user, with the new roles; the old ones for nothing.
    principal = admin.validate(new["ss_access"])
    assert principal.session_id == new_sid and principal.claims == ADMIN
    with pytest.raises(InvalidToken):
        admin.validate(old["ss_access"])
    assert [s.session_id for s in admin.sessions("alice")] == [new_sid]
    # A request still carrying the old cookies cannot rotate again.
    client.cookies.clear()
    for name, value in old.items():
        client.cookies.set(name, value, domain="testserver.local")
    refused = client.post("/rotate", headers={"X-CSRF-Token": old["ss_csrf"]})
    assert refused.status_code == 401 and refused.json()["reason"] == "revoked"
    client.cookies.clear()
    assert client.post("/rotate").status_code == 401
    # The old refresh cookie is reuse of the family: the session it moved to is revoked.
    with pytest.raises(RefreshReuseDetected):
        admin.refresh(old["ss_refresh"])
    with pytest.raises(InvalidToken):
        admin.validate(new["ss_access"])
    assert admin.sessions("alice") == []


def test_fastapi_rotates_the_cookies(url: str, keyring: Keyring, admin: SessionStore) -> None:
    with TestClient(fastapi_app(url, keyring), base_url=BASE) as client:
        check_rotation(client, admin)


def test_litestar_rotates_the_cookies(url: str, keyring: Keyring, admin: SessionStore) -> None:
    with LitestarClient(litestar_app(url, keyring), base_url=BASE) as client:
        check_rotation(client, admin)


def _path(cookie: str) -> str:
    return "/auth/refresh" if cookie == "ss_refresh" else "/"


class _FlaskClient:
    """Flask's test client in the shape ``check_rotation`` reads (json(), a cookie jar)."""

    def __init__(self, app: Flask) -> None:
        self.client = app.test_client()
        self.cookies = self

    def __getitem__(self, name: str) -> str:
        cookie = self.client.get_cookie(name, domain="localhost", path=_path(name))
        assert cookie is not None, name
        return cookie.value

    def set(self, name: str, value: str, domain: str) -> None:
        self.client.set_cookie(name, value, domain="localhost", path=_path(name))

    def clear(self) -> None:
        for name in COOKIES:
            self.client.delete_cookie(name, domain="localhost", path=_path(name))

    def post(self, path: str, headers: dict[str, str] | None = None) -> _FlaskAnswer:
        return _FlaskAnswer(self.client.post(path, headers=headers, base_url="https://localhost"))


class _FlaskAnswer:
    """A Flask test response as ``check_rotation`` reads one."""

    def __init__(self, response: Any) -> None:
        self.status_code: int = response.status_code
        self.response = response
        self.headers = self

    def json(self) -> Any:
        return self.response.get_json()

    def get_list(self, name: str) -> list[str]:
        found: list[str] = self.response.headers.getlist(name)
        return found


def test_flask_rotates_the_cookies(admin: SessionStore) -> None:
    check_rotation(_FlaskClient(flask_app(admin)), admin)
