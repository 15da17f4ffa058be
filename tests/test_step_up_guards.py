"""The step-up guards of every integration (``require(max_age=..., level=...)``) through
each framework's test client against a real server: the RFC 9470 challenge, exactly;
and the deprecated "fresh" spellings of the "not degraded" guard, which warn and work."""

import contextlib
import secrets
import time
import warnings
from collections.abc import AsyncIterator
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient as FastApiClient

from sessionstore import (
    AsyncSessionStore,
    InvalidInput,
    Keyring,
    Principal,
    SessionStore,
)
from sessionstore.integrations._http import AuthState, Guard, HttpAuth
from sessionstore.integrations.starlette import SessionAuth as StarletteAuth
from step_up_support import BOTH, BOTH_LOW, PHONE, check_answers, headers
from web_support import admin_fixture, server_fixtures

SECRET = secrets.token_bytes(32)
BASE = "https://testserver"

server, url = server_fixtures("stepup")


admin = admin_fixture()


# --- FastAPI / Starlette -------------------------------------------------------------


def fastapi_app(url: str, keyring: Keyring) -> FastAPI:
    store = AsyncSessionStore.from_url(url, keyring=keyring)
    auth = StarletteAuth(store, csrf_secret=SECRET)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await store.close()

    app = FastAPI(lifespan=lifespan, exception_handlers=auth.exception_handlers)
    Recent = Annotated[Principal, Depends(auth.require(max_age=300))]
    Strong = Annotated[Principal, Depends(auth.require(level=2))]
    Both = Annotated[Principal, Depends(auth.require(max_age=300, level=2, live=True))]
    Live = Annotated[Principal, Depends(auth.require_live)]
    Legacy = Annotated[Principal, Depends(auth.require_fresh)]

    @app.get("/recent")
    async def recent(principal: Recent) -> dict[str, str]:
        return {"user": principal.user_id}

    @app.get("/strong")
    async def strong(principal: Strong) -> dict[str, str]:
        return {"user": principal.user_id}

    @app.get("/both")
    async def both(principal: Both) -> dict[str, str]:
        return {"user": principal.user_id}

    @app.get("/live")
    async def live(principal: Live) -> dict[str, str]:
        return {"user": principal.user_id}

    @app.get("/legacy")
    async def legacy(principal: Legacy) -> dict[str, str]:
        return {"user": principal.user_id}

    return app


def test_fastapi_guards_answer_the_rfc_9470_challenge(
    url: str, keyring: Keyring, admin: SessionStore
) -> None:
    with FastApiClient(fastapi_app(url, keyring), base_url=BASE) as client:
        check_answers(lambda path, token: client.get(path, headers=headers(token)), admin)


def test_fastapi_require_fresh_warns_and_works(
    url: str, keyring: Keyring, admin: SessionStore
) -> None:
    token = admin.login("alice", device=PHONE).access_token
    with FastApiClient(fastapi_app(url, keyring), base_url=BASE) as client:
        assert client.get("/live", headers=headers(token)).json() == {"user": "alice"}
        with pytest.warns(DeprecationWarning, match="require_live"):
            answer = client.get("/legacy", headers=headers(token))
        assert answer.json() == {"user": "alice"}
        with pytest.warns(DeprecationWarning):
            assert client.get("/legacy").status_code == 401


# --- Litestar ------------------------------------------------------------------------


def litestar_app(url: str, keyring: Keyring) -> Any:
    from litestar import Litestar, Request, get

    from sessionstore.integrations.litestar import SessionAuth, principal_of

    store = AsyncSessionStore.from_url(url, keyring=keyring)
    auth = SessionAuth(store, csrf_secret=SECRET)

    def user(request: Request[Any, Any, Any]) -> dict[str, str]:
        principal = principal_of(request)
        assert principal is not None
        return {"user": principal.user_id}

    @get("/recent", guards=[auth.require(max_age=300)])
    async def recent(request: Request[Any, Any, Any]) -> dict[str, str]:
        return user(request)

    @get("/strong", guards=[auth.require(level=2)])
    async def strong(request: Request[Any, Any, Any]) -> dict[str, str]:
        return user(request)

    @get("/both", guards=[auth.require(max_age=300, level=2, live=True)])
    async def both(request: Request[Any, Any, Any]) -> dict[str, str]:
        return user(request)

    @get("/legacy", guards=[auth.require_fresh])
    async def legacy(request: Request[Any, Any, Any]) -> dict[str, str]:
        return user(request)

    @get("/live", guards=[auth.require_live])
    async def live(request: Request[Any, Any, Any]) -> dict[str, str]:
        return user(request)

    return Litestar(
        [recent, strong, both, legacy, live],
        on_app_init=[auth.on_app_init],
        on_shutdown=[store.close],
    )


def test_litestar_guards_answer_the_rfc_9470_challenge(
    url: str, keyring: Keyring, admin: SessionStore
) -> None:
    from litestar.testing import TestClient

    with TestClient(litestar_app(url, keyring), base_url=BASE + ".local") as client:
        check_answers(lambda path, token: client.get(path, headers=headers(token)), admin)


def test_litestar_require_fresh_warns_and_works(
    url: str, keyring: Keyring, admin: SessionStore
) -> None:
    from litestar.testing import TestClient

    token = admin.login("alice", device=PHONE).access_token
    with TestClient(litestar_app(url, keyring), base_url=BASE + ".local") as client:
        assert client.get("/live", headers=headers(token)).json() == {"user": "alice"}
        with pytest.warns(DeprecationWarning, match="require_live"):
            answer = client.get("/legacy", headers=headers(token))
        assert answer.json() == {"user": "alice"}


# --- Flask ---------------------------------------------------------------------------


def flask_app(store: SessionStore) -> Any:
    from flask import Flask, jsonify

    from sessionstore.integrations.flask import SessionAuth

    app = Flask(__name__)
    auth = SessionAuth(app, store=store, csrf_secret=SECRET)

    def user() -> Any:
        principal = auth.principal
        assert principal is not None
        return jsonify(user=principal.user_id)

    app.get("/recent")(auth.required(max_age=300)(user))
    app.get("/strong", endpoint="strong")(auth.required(level=2)(user))
    app.get("/both", endpoint="both")(auth.required(max_age=300, level=2, live=True)(user))

    @app.get("/principal")
    def principal() -> Any:
        return jsonify(user=auth.require_principal(max_age=300, level=2).user_id)

    with pytest.warns(DeprecationWarning, match="live="):
        legacy = auth.required(fresh=True)(user)
    app.get("/legacy", endpoint="legacy")(legacy)

    @app.get("/legacy-principal")
    def legacy_principal() -> Any:
        return jsonify(user=auth.require_principal(fresh=True).user_id)

    return app


def test_flask_guards_answer_the_rfc_9470_challenge(
    url: str, keyring: Keyring, admin: SessionStore
) -> None:
    with SessionStore.from_url(url, keyring=keyring) as store:
        client = flask_app(store).test_client()
        check_answers(lambda path, token: client.get(path, headers=headers(token)), admin)
        weak = admin.login("alice", device=PHONE, level=1).access_token
        refused = client.get("/principal", headers=headers(weak))
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == BOTH_LOW


def test_flask_fresh_warns_and_works(url: str, keyring: Keyring, admin: SessionStore) -> None:
    with SessionStore.from_url(url, keyring=keyring) as store:
        client = flask_app(store).test_client()
        token = admin.login("alice", device=PHONE).access_token
        assert client.get("/legacy", headers=headers(token)).json == {"user": "alice"}
        assert client.get("/legacy").status_code == 401
        with pytest.warns(DeprecationWarning, match="live="):
            answer = client.get("/legacy-principal", headers=headers(token))
        assert answer.json == {"user": "alice"}


# --- The shared decision -------------------------------------------------------------


def test_guard_refuses_bad_requirements() -> None:
    bad: dict[str, Any]
    for bad in (
        {"max_age": -1},
        {"max_age": 1.5},
        {"max_age": True},
        {"level": 0},
        {"level": 10},
        {"level": "2"},
        {"live": 1},
    ):
        with pytest.raises(InvalidInput):
            Guard(**bad)


def test_a_degraded_principal_is_judged_by_its_token(keyring: Keyring) -> None:
    from sessionstore import Config

    http = HttpAuth(Config())
    now = time.time()
    base: dict[str, Any] = {"user_id": "u", "session_id": "A" * 22, "claims": {}}
    base |= {"session": None, "degraded": True, "issued_at": int(now), "expires_at": int(now)}
    recent = Principal(**base, auth_time=int(now) - 10, acr=2)
    unknown = Principal(**base)
    need = Guard(max_age=300, level=2)
    assert http.insufficient(recent, need, now) is None
    reply = http.insufficient(unknown, need, now)  # a token without auth_time: refused
    assert reply is not None and dict(reply.headers)["WWW-Authenticate"] == BOTH
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert http.require(AuthState(principal=recent), need) is recent
