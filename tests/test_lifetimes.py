"""Lifetimes per login: ``persistent=False`` (a browser-session login) and shorter TTLs.

On the real engine rows, both APIs: the flag is stored only when it differs from the
default (a plain login's hash is unchanged), every read of the session reports it (a
listing, a cold and a hot validation), a refresh carries it on, a bad value is refused
before any write; per-login lifetimes are bounded by the ``Config``. Through the
Starlette (FastAPI) and Flask integrations, a browser-session login's cookies, and those
its refresh sets, carry no Max-Age or Expires; a persistent login's do.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from http.cookies import SimpleCookie
from typing import Any

import pytest
import redis
from fastapi import FastAPI, Request, Response
from fastapi.testclient import TestClient
from flask import Flask, jsonify, make_response

from sessionstore import AsyncSessionStore, Config, Device, InvalidInput, Keyring, SessionStore
from sessionstore.integrations.flask import SessionAuth as FlaskAuth
from sessionstore.integrations.starlette import SessionAuth as StarletteAuth
from sessionstore.keys import user_keys
from support import StoreFactory
from web_support import server_fixtures

PHONE = Device(id="phone", name="Pixel", user_agent="Mozilla/5.0 (Linux; Android 14)")
BROWSER_SESSION = b"bs"  # the hash field (sessionstore._engine.schema), "1" when not persistent


def session_hash(client: redis.Redis, user_id: str, session_id: str) -> dict[bytes, bytes]:
    return client.hgetall(user_keys("ss", user_id).session(session_id))  # type: ignore[return-value]


async def test_a_browser_session_login_says_so_everywhere(
    make_store: StoreFactory, redis_client: redis.Redis
) -> None:
    store = make_store()
    pair = await store.login("alice", device=PHONE, persistent=False)
    assert pair.persistent is False
    assert session_hash(redis_client, "alice", pair.session_id)[BROWSER_SESSION] == b"1"
    [listed] = await store.sessions("alice")
    assert listed.persistent is False
    for _ in range(3):  # a cold read (the validation's row), then the caches
        principal = await store.validate(pair.access_token)
        assert principal.session is not None and principal.session.persistent is False
    rotated = await store.refresh(pair.refresh_token)
    assert rotated.persistent is False and rotated.session_id == pair.session_id
    assert (await store.validate(rotated.access_token)).session.persistent is False  # type: ignore[union-attr]
    again = await store.refresh(rotated.refresh_token)
    assert again.persistent is False


async def test_a_default_login_is_persistent_and_stores_nothing_more(
    make_store: StoreFactory, redis_client: redis.Redis
) -> None:
    store = make_store()
    pair = await store.login("bob", device=PHONE)
    explicit = await store.login("bob", device=PHONE, persistent=True)
    assert pair.persistent is True and explicit.persistent is True
    for made in (pair, explicit):
        assert BROWSER_SESSION not in session_hash(redis_client, "bob", made.session_id)
    assert all(s.persistent for s in await store.sessions("bob"))
    assert (await store.refresh(pair.refresh_token)).persistent is True


@pytest.mark.parametrize("value", [0, 1, "no", None, "false"])
async def test_a_bad_persistent_is_refused_before_any_write(
    make_store: StoreFactory, redis_client: redis.Redis, value: Any
) -> None:
    store = make_store()
    with pytest.raises(InvalidInput, match="persistent"):
        await store.login("carol", device=PHONE, persistent=value)
    assert not list(redis_client.scan_iter(match="*carol*"))  # nothing of the user's
    # Refused locally: a store whose server is gone gives the same error, not an outage.
    nowhere = SessionStore.from_url("redis://127.0.0.1:9/0", keyring=store.keyring)
    with nowhere, pytest.raises(InvalidInput, match="persistent"):
        nowhere.login("carol", device=PHONE, persistent=value)


async def test_per_login_lifetimes_are_bounded_by_the_config(make_store: StoreFactory) -> None:
    store = make_store(config=Config(idle_ttl=3600, absolute_ttl=7200))
    pair = await store.login("dave", device=PHONE, idle_ttl=60, absolute_ttl=120)
    [session] = await store.sessions("dave")
    assert session.session_id == pair.session_id
    assert 55 <= session.idle_expires_at - session.created_at <= 61
    assert 115 <= session.absolute_expires_at - session.created_at <= 121
    overs: list[dict[str, Any]] = [{"idle_ttl": 3601}, {"absolute_ttl": 7201}, {"idle_ttl": 0}]
    for over in overs:
        with pytest.raises(InvalidInput):
            await store.login("dave", device=PHONE, **over)
    assert len(await store.sessions("dave")) == 1


# -- the integrations' cookies --------------------------------------------------------------

server, url = server_fixtures("lifetimes")


def set_cookies(headers: list[str]) -> dict[str, dict[str, str]]:
    """Each Set-Cookie by name: its attributes (lower-case names), as the browser reads them."""
    found: dict[str, dict[str, str]] = {}
    for header in headers:
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        for name, morsel in jar.items():
            found[name] = {k: v for k, v in morsel.items() if v}
    return found


def assert_lifetime(cookies: dict[str, dict[str, str]], persistent: bool) -> None:
    assert {"ss_access", "ss_refresh", "ss_csrf"} <= set(cookies)
    for name in ("ss_access", "ss_refresh", "ss_csrf"):
        attributes = cookies[name]
        if persistent:
            assert int(attributes["max-age"]) > 0, (name, attributes)
        else:  # a browser-session cookie: gone when the browser closes
            assert "max-age" not in attributes and "expires" not in attributes, (name, attributes)


@pytest.fixture
def keyring_for_web() -> Keyring:
    return Keyring.generate("HS256")


@pytest.fixture
def flask_app(url: str, keyring_for_web: Keyring) -> Iterator[Flask]:
    with SessionStore.from_url(url, keyring=keyring_for_web) as store:
        app = Flask(__name__)
        auth = FlaskAuth(app, store=store, csrf_secret=secrets.token_bytes(32))

        @app.post("/login/<remember>")
        def login(remember: str) -> Any:
            pair = store.login("alice", device=PHONE, persistent=remember == "yes")
            response = make_response(jsonify(session=pair.session_id))
            auth.set_login_cookies(response, pair)
            return response

        @app.post("/auth/refresh")
        def refresh() -> Any:
            response = make_response(jsonify(ok=True))
            auth.refresh(response)
            return response

        yield app


@pytest.mark.parametrize("persistent", [True, False])
def test_flask_cookies_follow_the_login(flask_app: Flask, persistent: bool) -> None:
    client = flask_app.test_client()
    login = client.post(f"/login/{'yes' if persistent else 'no'}")
    assert_lifetime(set_cookies(login.headers.getlist("Set-Cookie")), persistent)
    csrf = client.get_cookie("ss_csrf")
    assert csrf is not None
    refresh = client.post("/auth/refresh", headers={"X-CSRF-Token": csrf.value})
    assert refresh.status_code == 200, refresh.json
    refreshed = set_cookies(refresh.headers.getlist("Set-Cookie"))
    assert_lifetime(refreshed, persistent)


@pytest.fixture
def fastapi_client(url: str, keyring_for_web: Keyring) -> Iterator[TestClient]:
    store = AsyncSessionStore.from_url(url, keyring=keyring_for_web)
    auth = StarletteAuth(store, csrf_secret=secrets.token_bytes(32))
    app = FastAPI()

    @app.post("/login/{remember}")
    async def login(remember: str, response: Response) -> dict[str, str]:
        pair = await store.login("alice", device=PHONE, persistent=remember == "yes")
        auth.set_login_cookies(response, pair)
        return {"session": pair.session_id}

    @app.post("/auth/refresh")
    async def refresh(request: Request, response: Response) -> dict[str, bool]:
        await auth.refresh(request, response)
        return {"ok": True}

    with TestClient(app, base_url="https://testserver") as client:
        yield client


@pytest.mark.parametrize("persistent", [True, False])
def test_fastapi_cookies_follow_the_login(fastapi_client: TestClient, persistent: bool) -> None:
    login = fastapi_client.post(f"/login/{'yes' if persistent else 'no'}")
    assert_lifetime(set_cookies(login.headers.get_list("set-cookie")), persistent)
    csrf = {"X-CSRF-Token": fastapi_client.cookies["ss_csrf"]}
    refresh = fastapi_client.post("/auth/refresh", headers=csrf)
    assert refresh.status_code == 200, refresh.text
    assert_lifetime(set_cookies(refresh.headers.get_list("set-cookie")), persistent)
