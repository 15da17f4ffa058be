"""Helpers of the integration, CLI, rate limiter and metrics tests: one private server.

These suites do not depend on engine differences, so they run against one server of their
own (valkey preferred, else redis-server), started per module and stopped by its pid.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from conftest import needed
from sessionstore import AsyncSessionStore, Config, Keyring, Principal, SessionStore
from sessionstore.testing import LocalServer, local_binary

__all__ = [
    "BASE",
    "LAPTOP_UA",
    "PHONE_UA",
    "Get",
    "admin_fixture",
    "fastapi_app",
    "flushed",
    "gunicorn_master",
    "private_server",
    "server_fixtures",
    "web_client",
]

BASE = "https://testserver"  # Secure cookies travel over https only, even in a test client

# The demo suites' two devices (HTTP client and real browser alike).
LAPTOP_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/156.0.0.0 Safari/537.36"
)
PHONE_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/156.0.0.0 Mobile Safari/537.36"
)


@contextlib.contextmanager
def private_server(name: str) -> Iterator[LocalServer]:
    """A LocalServer of our own; a missing binary skips (fails under CI=true)."""
    binary = needed(local_binary(), "neither valkey-server nor redis-server is installed")
    with LocalServer(binary, name=name) as server:
        yield server


def flushed(server: LocalServer) -> str:
    """``server``'s URL after FLUSHALL."""
    client = redis.Redis.from_url(server.url, socket_timeout=5)
    try:
        client.flushall()
    finally:
        client.close()
    return server.url


def server_fixtures(name: str) -> tuple[Any, Any]:
    """A suite's ``server`` (its private server, per module) and ``url`` (flushed per test)
    fixtures: ``server, url = server_fixtures("name")`` at the top of the module."""

    @pytest.fixture(scope="module")
    def server() -> Iterator[LocalServer]:
        with private_server(name) as srv:
            yield srv

    @pytest.fixture
    def url(server: LocalServer) -> str:
        return flushed(server)

    return server, url


def admin_fixture() -> Any:
    """A suite's ``admin`` fixture: a sync store on its server (``url``) and keyring, the
    test's own hands (login, revoke): ``admin = admin_fixture()`` at the top of the module."""

    @pytest.fixture
    def admin(url: str, keyring: Keyring) -> Iterator[SessionStore]:
        with SessionStore.from_url(url, keyring=keyring) as store:
            yield store

    return admin


@contextlib.contextmanager
def gunicorn_master(
    command: list[str], cwd: Path, env: dict[str, str], answers: Callable[[], bool]
) -> Iterator[None]:
    """Run a gunicorn master (``command``) until the block ends: up once ``answers()``
    (OSError counts as not yet) within 30 s, then SIGTERM (the master stops its workers)."""
    log_path = cwd / "gunicorn.log"
    with log_path.open("wb") as log:
        master = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 30
            while True:
                assert master.poll() is None, log_path.read_text()
                with contextlib.suppress(OSError):
                    if answers():
                        break
                assert time.monotonic() < deadline, "gunicorn did not answer within 30 s"
                time.sleep(0.02)
            yield
        finally:
            master.send_signal(signal.SIGTERM)
            try:
                master.wait(timeout=15)
            except subprocess.TimeoutExpired:
                master.kill()
                master.wait(timeout=5)


def fastapi_app(url: str, keyring: Keyring, config: Config) -> tuple[Any, AsyncSessionStore]:
    """A FastAPI app behind the middleware, whose GET /me names the principal; its store."""
    from fastapi import Depends, FastAPI
    from starlette.middleware import Middleware

    from sessionstore.integrations.starlette import SessionAuth, SessionAuthMiddleware

    store = AsyncSessionStore.from_url(url, keyring=keyring, config=config)
    auth = SessionAuth(store, csrf_secret=secrets.token_bytes(32))
    app = FastAPI(
        middleware=[Middleware(SessionAuthMiddleware, auth=auth)],
        exception_handlers=auth.exception_handlers,
    )

    required = Depends(auth.require_principal)

    @app.get("/me")
    async def me(principal: Principal = required) -> dict[str, str]:
        return {"user": principal.user_id, "session": principal.session_id}

    return app, store


Get = Callable[[dict[str, str]], tuple[int, dict[str, str], Any, dict[str, str]]]


@contextlib.contextmanager
def web_client(name: str, url: str, keyring: Keyring, config: Config) -> Iterator[Get]:
    """GET /me through ``name``'s test client (fastapi, flask or litestar): (status,
    headers, JSON, cookies set). /me answers the principal's user and session."""
    if name == "fastapi":
        from starlette.testclient import TestClient

        app, _ = fastapi_app(url, keyring, config)
        with TestClient(app, base_url=BASE) as client:
            yield _getter(lambda h: client.get("/me", headers=h))
    elif name == "flask":
        from flask import Flask, jsonify

        from sessionstore.integrations.flask import SessionAuth

        with SessionStore.from_url(url, keyring=keyring, config=config) as store:
            app = Flask(__name__)
            auth = SessionAuth(app, store=store)

            @app.get("/me")
            @auth.required
            def me() -> Any:
                principal = auth.principal
                assert principal is not None
                return jsonify(user=principal.user_id, session=principal.session_id)

            flask_client = app.test_client()

            def flask_get(h: dict[str, str]) -> Any:
                cookie = h.pop("Cookie", None)  # the test client's jar sends cookies
                if cookie is not None:
                    name, _, value = cookie.partition("=")
                    flask_client.set_cookie(name, value, domain="testserver")
                return flask_client.get("/me", headers=h, base_url=BASE)

            yield _getter(flask_get)
    else:
        from litestar import Litestar, Request, get
        from litestar.testing import TestClient as LitestarClient

        from sessionstore.integrations.litestar import SessionAuth as LitestarAuth

        astore = AsyncSessionStore.from_url(url, keyring=keyring, config=config)
        lauth = LitestarAuth(astore)

        @get("/me", guards=[lauth.require_principal])
        async def lme(request: Request[Principal, Any, Any]) -> dict[str, str]:
            return {"user": request.user.user_id, "session": request.user.session_id}

        app = Litestar([lme], on_app_init=[lauth.on_app_init], on_shutdown=[astore.close])
        with LitestarClient(app, base_url="https://testserver.local") as lclient:
            yield _getter(lambda h: lclient.get("/me", headers=h))


def _getter(get: Callable[[dict[str, str]], Any]) -> Get:
    def run(headers: dict[str, str]) -> Any:
        r = get(headers)
        raw = r.headers
        lines = (
            raw.get_list("set-cookie") if hasattr(raw, "get_list") else raw.getlist("Set-Cookie")
        )
        made = {ln.split("=", 1)[0]: ln.split("=", 1)[1].split(";", 1)[0] for ln in lines}
        body = r.json() if callable(r.json) else r.json
        return r.status_code, {k.lower(): v for k, v in raw.items()}, body, made

    return run
