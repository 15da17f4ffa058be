"""The JWKS route of every integration: exactly ``keyring.to_jwks()``, cached sensibly.

Each framework's own test client asks its route; the body is the keyring's public JWK Set
(an HMAC keyring's is empty: no secret ever leaves), with ``Cache-Control`` lowered to the
time left before a rotated-out key retires, an ``ETag`` and 304 on ``If-None-Match``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sessionstore import AsyncSessionStore, Keyring, SessionStore
from sessionstore.errors import InvalidInput
from sessionstore.integrations._jwks import JwksRoute
from web_support import server_fixtures

server, url = server_fixtures("jwks")
FRAMEWORKS = ["starlette", "fastapi", "flask", "litestar", "django"]
# (status, headers lower-cased, body) of a GET of ``path`` with ``headers``.
Get = Callable[[str, dict[str, str]], tuple[int, dict[str, str], bytes]]
Serve = Callable[[Keyring], tuple[Get, Keyring]]


@pytest.fixture
def ring() -> Keyring:
    return Keyring.generate("ES256", kid="es-1")


def _starlette(url: str, ring: Keyring, fastapi: bool) -> Iterator[tuple[Get, Keyring]]:
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from sessionstore.integrations.starlette import SessionAuth

    store = AsyncSessionStore.from_url(url, keyring=ring)
    auth = SessionAuth(store)
    routes = [auth.jwks_route(), auth.jwks_route("/keys/other.json", max_age=60)]
    if fastapi:
        from fastapi import FastAPI

        app: Any = FastAPI()
        app.router.routes.extend(routes)
    else:
        app = Starlette(routes=routes)
    with TestClient(app) as client:

        def get(path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
            r = client.get(path, headers=headers)
            return r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content

        yield get, ring


def _flask(url: str, ring: Keyring) -> Iterator[tuple[Get, Keyring]]:
    from flask import Flask

    from sessionstore.integrations.flask import SessionAuth

    app = Flask(__name__)
    with SessionStore.from_url(url, keyring=ring) as store:
        auth = SessionAuth(app, store=store)
        auth.add_jwks_route(app)
        other = Flask("other")
        SessionAuth(other, store=store).add_jwks_route(other, "/keys/other.json", max_age=60)
        clients = {"/keys/other.json": other.test_client()}

        def get(path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
            r = clients.get(path, app.test_client()).get(path, headers=headers)
            return r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.data

        yield get, ring


def _litestar(url: str, ring: Keyring) -> Iterator[tuple[Get, Keyring]]:
    from litestar import Litestar
    from litestar.testing import TestClient

    from sessionstore.integrations.litestar import SessionAuth

    store = AsyncSessionStore.from_url(url, keyring=ring)
    auth = SessionAuth(store)
    app = Litestar(
        [auth.jwks_route(), auth.jwks_route("/keys/other.json", max_age=60)],
        on_app_init=[auth.on_app_init],
    )
    with TestClient(app) as client:

        def get(path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
            r = client.get(path, headers=headers)
            return r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content

        yield get, ring


def _django(url: str, ring: Keyring) -> Iterator[tuple[Get, Keyring]]:
    pytest.importorskip("django")
    import django_site

    django_site.setup()
    from django.test import Client, override_settings

    from django_support import options
    from sessionstore.integrations.django import conf

    with override_settings(SESSIONSTORE=options(url, ring)):
        client = Client()

        def get(path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
            r = client.get(path, headers=headers)
            return r.status_code, {k.lower(): v for k, v in r.items()}, r.content

        live = conf.options().keyring  # settings hold a JWK Set: the process loads its own
        assert live is not None
        yield get, live


@pytest.fixture(params=FRAMEWORKS)
def serve(request: pytest.FixtureRequest, url: str) -> Iterator[Serve]:
    """``serve(keyring)``: a GET through the framework's test client (routes at the default
    path and at ``/keys/other.json``, max-age 60), and the keyring the app uses."""
    opened: list[Iterator[tuple[Get, Keyring]]] = []

    def start(keyring: Keyring) -> tuple[Get, Keyring]:
        name = request.param
        if name in ("starlette", "fastapi"):
            it = _starlette(url, keyring, fastapi=name == "fastapi")
        elif name == "flask":
            it = _flask(url, keyring)
        elif name == "litestar":
            it = _litestar(url, keyring)
        else:
            it = _django(url, keyring)
        opened.append(it)
        return next(it)

    yield start
    for it in opened:
        for _ in it:
            pass


def test_the_route_serves_exactly_the_public_jwks(serve: Serve, ring: Keyring) -> None:
    get, ring = serve(ring)
    status, headers, body = get("/.well-known/jwks.json", {})
    assert status == 200
    assert json.loads(body) == ring.to_jwks()
    assert [k["kid"] for k in ring.to_jwks()["keys"]] == ["es-1"]
    assert "d" not in json.loads(body)["keys"][0]  # the private scalar never leaves
    assert headers["content-type"] == "application/jwk-set+json"
    assert headers["cache-control"] == "public, max-age=300"
    etag = headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    again, cached, empty = get("/.well-known/jwks.json", {"If-None-Match": etag})
    assert (again, empty) == (304, b"")
    assert cached["etag"] == etag
    status, headers, body = get("/keys/other.json", {})
    assert (status, headers["cache-control"]) == (200, "public, max-age=60")
    assert json.loads(body) == ring.to_jwks()


def test_a_rotation_shows_at_once_and_caps_the_cache(serve: Serve, ring: Keyring) -> None:
    get, ring = serve(ring)
    _, before, _ = get("/.well-known/jwks.json", {})
    ring.rotate(Keyring.generate("EdDSA", kid="ed-2"), grace=120)
    status, headers, body = get("/.well-known/jwks.json", {"If-None-Match": before["etag"]})
    assert status == 200  # the set changed: the old ETag no longer matches
    assert json.loads(body) == ring.to_jwks()
    assert {k["kid"] for k in json.loads(body)["keys"]} == {"es-1", "ed-2"}
    age = int(headers["cache-control"].rpartition("=")[2])
    assert 110 <= age <= 120  # never cached past the old key's retirement


def test_an_hmac_keyring_publishes_an_empty_set(serve: Serve) -> None:
    get, ring = serve(Keyring.generate("HS256", kid="hs-1"))
    secret = ring.to_private_jwks()["keys"][0]["k"]
    status, _, body = get("/.well-known/jwks.json", {})
    assert status == 200
    assert json.loads(body) == ring.to_jwks() == {"keys": []}
    assert secret.encode() not in body


def test_the_cache_lifetime_follows_the_earliest_retirement() -> None:
    ring = Keyring.generate("ES256", kid="a")
    route = JwksRoute(lambda: ring, max_age=300)
    now = time.time()
    assert route.cache_seconds(now) == 300
    ring.rotate(Keyring.generate("ES256", kid="b"), grace=1000)
    assert route.cache_seconds(now) == 300  # the grace is longer than max-age
    ring.rotate(Keyring.generate("ES256", kid="c"), grace=30)
    assert 25 <= route.cache_seconds(now) <= 30
    assert route.cache_seconds(now + 40) == 0  # past it: re-fetch every time


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"path": "keys"}, "start with /"),
        ({"path": "/a b"}, "start with /"),
        ({"max_age": -1}, "0..86400"),
        ({"max_age": 86_401}, "0..86400"),
        ({"max_age": True}, "integer"),
        ({"max_age": 1.5}, "integer"),
    ],
)
def test_bad_route_settings_are_refused(kwargs: dict[str, Any], message: str) -> None:
    ring = Keyring.generate("ES256")
    with pytest.raises(InvalidInput, match=message):
        JwksRoute(lambda: ring, **kwargs)
