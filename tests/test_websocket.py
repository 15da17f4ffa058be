"""Cookie-authenticated WebSocket handshakes pass an Origin check (Starlette integration).

A browser sends the session cookie on a handshake whatever page opens it: a foreign page
must not get a socket authenticated as the victim. Same origin as the Host, or an allowed
origin; anything else (a missing Origin included) is closed with 1008 before the app runs.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect

from sessionstore import AsyncSessionStore, Device, Keyring, SessionStore
from sessionstore.errors import InvalidInput
from sessionstore.integrations.starlette import SessionAuth, SessionAuthMiddleware
from web_support import server_fixtures

PHONE = Device(id="phone-1", user_agent="Mozilla/5.0 (Linux; Android 14)")
WS = "wss://testserver/ws"  # wss: the Secure cookies travel, as in a browser over https
SAME = "https://testserver"
EVIL = "https://evil.example"

server, url = server_fixtures("websocket")


def make_app(url: str, keyring: Keyring, allowed_origins: tuple[str, ...] = ()) -> Starlette:
    store = AsyncSessionStore.from_url(url, keyring=keyring)
    auth = SessionAuth(store, csrf_secret=secrets.token_bytes(32), allowed_origins=allowed_origins)

    async def login(request: Request) -> Response:
        response = JSONResponse({})
        auth.set_login_cookies(response, await store.login("alice", device=PHONE))
        return response

    async def whoami(websocket: WebSocket) -> None:
        await websocket.accept()
        user = websocket.user
        await websocket.send_json({"user": user.identity if user.is_authenticated else None})
        await websocket.close()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await store.close()

    return Starlette(
        routes=[Route("/login", login, methods=["POST"]), WebSocketRoute("/ws", whoami)],
        middleware=[Middleware(SessionAuthMiddleware, auth=auth)],
        lifespan=lifespan,
    )


def who(client: TestClient, headers: dict[str, str]) -> Any:
    """The user the app saw on an accepted socket."""
    with client.websocket_connect(WS, headers=headers) as ws:
        return ws.receive_json()["user"]


def refused(client: TestClient, headers: dict[str, str]) -> WebSocketDisconnect:
    """The close of a refused handshake (the app never ran)."""
    with (
        pytest.raises(WebSocketDisconnect) as caught,
        client.websocket_connect(WS, headers=headers),
    ):
        pass
    return caught.value


def test_a_cookie_handshake_from_a_foreign_origin_is_closed_1008(
    url: str, keyring: Keyring
) -> None:
    with TestClient(make_app(url, keyring), base_url=SAME) as client:
        client.post("/login")
        assert who(client, {"origin": SAME}) == "alice"
        closed = refused(client, {"origin": EVIL})
        assert closed.code == 1008 and closed.reason == "Cross-origin WebSocket refused"
        # Browsers always send Origin on a handshake: none means no browser, so no cookie.
        assert refused(client, {}).code == 1008
        assert refused(client, {"origin": "null"}).code == 1008
        # Same host, other port or plain http over wss: another origin.
        assert refused(client, {"origin": "https://testserver:8443"}).code == 1008
        assert refused(client, {"origin": "http://testserver"}).code == 1008
        assert who(client, {"origin": "https://TESTSERVER:443"}) == "alice"


def test_allowed_origins_and_bearer_handshakes(url: str, keyring: Keyring) -> None:
    with SessionStore.from_url(url, keyring=keyring) as admin:
        pair = admin.login("alice", device=PHONE)
    app = make_app(url, keyring, allowed_origins=("https://app.example",))
    with TestClient(app, base_url=SAME) as client:
        # A Bearer header is not ambient authority: no Origin rule.
        bearer = {"authorization": f"Bearer {pair.access_token}"}
        assert who(client, {**bearer, "origin": EVIL}) == "alice"
        # Anonymous handshakes are the app's business.
        assert who(client, {"origin": EVIL}) is None
        client.post("/login")
        assert who(client, {"origin": "https://app.example"}) == "alice"
        assert refused(client, {"origin": "https://other.example"}).code == 1008


def test_allowed_origins_are_checked_at_construction(url: str, keyring: Keyring) -> None:
    store = AsyncSessionStore.from_url(url, keyring=keyring)
    for bad in ("app.example", "https://app.example/path", "ftp://app.example", "null"):
        with pytest.raises(InvalidInput):
            SessionAuth(store, allowed_origins=(bad,))
    with pytest.raises(InvalidInput):
        SessionAuth(store, allowed_origins="https://app.example")
