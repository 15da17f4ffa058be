"""Live connections close when their session ends (issue 19, point 1).

An authenticated WebSocket or streamed response served through the middleware is ended
when its session is revoked, by any process and by any kind of revocation, when it
expires, and once Redis has been unreachable for as long as validations allow. The
revocation, expiry, fork and loop tests run on every engine row (``redis_url``: valkey,
redis7, a cluster); the idle count and the faults on private servers. Clients:
Starlette's and Litestar's test clients, a real ``websockets`` client on uvicorn, and an
in-memory ASGI driver (``Socket``) for thousands of connections on one loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis
from litestar import Litestar, get, websocket
from litestar.connection import WebSocket as LitestarSocket
from litestar.exceptions import WebSocketDisconnect as LitestarDisconnect
from litestar.response import Stream
from litestar.testing import TestClient as LitestarClient
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect

from forks import expect, fork, outcome
from sessionstore import (
    AsyncSessionStore,
    Config,
    Device,
    Keyring,
    RefreshReuseDetected,
    SessionStore,
    TokenPair,
)
from sessionstore.integrations import litestar as ls
from sessionstore.integrations.starlette import SessionAuth, SessionAuthMiddleware
from sessionstore.testing import LocalServer
from web_support import admin_fixture, server_fixtures

PHONE = Device(id="phone-1", user_agent="Mozilla/5.0 (Linux; Android 14)")
LAPTOP = Device(id="laptop-1", user_agent="Mozilla/5.0 (X11; Linux x86_64)")
BOUND = 2.0  # seconds from an acknowledged revocation to the close, at most

server, private_url = server_fixtures("live")


@pytest.fixture
def url(redis_url: str) -> str:
    """The engine row's server (valkey, redis7, cluster, ...), flushed."""
    return redis_url


def bearer(pair: TokenPair) -> dict[str, str]:
    return {"authorization": f"Bearer {pair.access_token}"}


admin = admin_fixture()


def starlette_app(store: AsyncSessionStore, **options: Any) -> tuple[Starlette, SessionAuth]:
    """An echo WebSocket (``/ws``) and an endless event stream (``/events``)."""
    auth = SessionAuth(store, **options)

    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await ws.send_text(await ws.receive_text())

    async def events(request: Request) -> StreamingResponse:
        async def ticks() -> AsyncIterator[str]:
            n = 0
            while True:
                yield f"data: {n}\n\n"
                n += 1
                await asyncio.sleep(0.02)

        return StreamingResponse(ticks(), media_type="text/event-stream")

    async def late(request: Request) -> StreamingResponse:
        await asyncio.sleep(0.3)  # validated, then the session is revoked before any byte

        async def one() -> AsyncIterator[str]:
            yield "data: secret\n\n"
            yield "data: more\n\n"

        return StreamingResponse(one(), media_type="text/event-stream")

    app = Starlette(
        routes=[WebSocketRoute("/ws", echo), Route("/events", events), Route("/late", late)],
        middleware=[Middleware(SessionAuthMiddleware, auth=auth)],
    )
    return app, auth


def closed_within(ws: Any, seconds: float) -> WebSocketDisconnect:
    """The close the TestClient's socket gets (it must come within ``seconds``)."""
    started = time.monotonic()
    with pytest.raises(WebSocketDisconnect) as caught:
        ws.receive_text()
    assert time.monotonic() - started < seconds
    return caught.value


def echoes(ws: Any) -> bool:
    ws.send_text("ping")
    return bool(ws.receive_text() == "ping")


# Each kind of revocation (``events.RevokeReason``), done by another store on the server:
# (that store, the watched session's pair, the server's URL) -> anything.
KINDS: dict[str, Callable[[SessionStore, TokenPair, str], object]] = {
    "revoke": lambda admin, pair, url: admin.revoke("alice", pair.session_id),
    "device": lambda admin, pair, url: admin.revoke_device("alice", PHONE.id),
    "user": lambda admin, pair, url: admin.revoke_user("alice"),
    "logout": lambda admin, pair, url: admin.logout(pair.access_token),
}


def _evict(admin: SessionStore, pair: TokenPair, url: str) -> None:
    with SessionStore.from_url(
        url, keyring=admin.keyring, config=Config(max_sessions_per_user=1)
    ) as capped:
        capped.login("alice", device=LAPTOP)  # the cap evicts the oldest: the watched one


def _reuse(admin: SessionStore, pair: TokenPair, url: str) -> None:
    with SessionStore.from_url(url, keyring=admin.keyring, config=Config(refresh_grace=0)) as s:
        s.refresh(pair.refresh_token)
        time.sleep(0.05)  # past the grace of 0 (rotation times are in ms)
        with pytest.raises(RefreshReuseDetected):
            s.refresh(pair.refresh_token)


KINDS["evicted"] = _evict
KINDS["reuse"] = _reuse


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_of_revocation_closes_the_websocket_4401(
    kind: str, url: str, keyring: Keyring, admin: SessionStore
) -> None:
    watched = admin.login("alice", device=PHONE)
    bystander = admin.login("bob", device=PHONE)
    app, auth = starlette_app(AsyncSessionStore.from_url(url, keyring=keyring))
    with (
        TestClient(app) as client,
        client.websocket_connect("/ws", headers=bearer(watched)) as ws,
        client.websocket_connect("/ws", headers=bearer(bystander)) as other,
    ):
        assert echoes(ws) and echoes(other)
        assert auth.live is not None and len(auth.live) == 2
        KINDS[kind](admin, watched, url)
        closed = closed_within(ws, BOUND)
        assert (closed.code, closed.reason) == (4401, "Session revoked")
        assert echoes(other)  # another session's connection stays open
        assert len(auth.live) == 1


REVOKER = """
import sys
from sessionstore import SessionStore
with SessionStore.from_url(sys.argv[1]) as store:
    print(store.revoke_user(sys.argv[2]))
"""


def test_a_revocation_in_another_process_closes_a_real_websocket(
    url: str, keyring: Keyring, admin: SessionStore
) -> None:
    """uvicorn on a free port, the ``websockets`` client, the revoke in a subprocess."""
    uvicorn = pytest.importorskip("uvicorn")
    client = pytest.importorskip("websockets.sync.client")
    pair, other = admin.login("alice", device=PHONE), admin.login("bob", device=PHONE)
    app, _ = starlette_app(AsyncSessionStore.from_url(url, keyring=keyring))
    with serving(uvicorn, app) as port:
        target = f"ws://127.0.0.1:{port}/ws"
        with (
            client.connect(target, additional_headers=bearer(pair)) as ws,
            client.connect(target, additional_headers=bearer(other)) as bystander,
        ):
            ws.send("hi")
            assert ws.recv(timeout=5) == "hi"
            done = subprocess.run(
                [sys.executable, "-c", REVOKER, url, "alice"],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            assert done.stdout.strip() == "1"
            acknowledged = time.monotonic()
            with pytest.raises(Exception) as caught:  # ConnectionClosed
                ws.recv(timeout=BOUND)
            assert time.monotonic() - acknowledged < BOUND
            rcvd = getattr(caught.value, "rcvd", None)
            assert rcvd is not None and (rcvd.code, rcvd.reason) == (4401, "Session revoked")
            bystander.send("still here")
            assert bystander.recv(timeout=5) == "still here"


@contextlib.contextmanager
def serving(uvicorn: Any, app: Any) -> Iterator[int]:
    """``app`` on uvicorn (its own thread and loop) on a free loopback port."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)


def test_an_event_stream_ends_on_revoke_and_others_go_on(
    url: str, keyring: Keyring, admin: SessionStore
) -> None:
    watched, bystander = admin.login("alice", device=PHONE), admin.login("bob", device=PHONE)
    app, auth = starlette_app(AsyncSessionStore.from_url(url, keyring=keyring))
    with TestClient(app) as client, client.stream("GET", "/events", headers=bearer(watched)) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = r.iter_text()
        assert next(events).startswith("data: 0")
        assert auth.live is not None and len(auth.live) == 1
        admin.revoke("alice", watched.session_id)
        acknowledged = time.monotonic()
        rest = list(events)  # the body ends: a complete chunked response
        assert time.monotonic() - acknowledged < BOUND
        assert len(rest) < 50
        with client.stream("GET", "/events", headers=bearer(bystander)) as other:
            ticks = other.iter_text()
            assert [next(ticks)[:7] for _ in range(3)] == ["data: 0", "data: 1", "data: 2"]
    assert len(auth.live) == 0


def test_a_stream_revoked_before_its_first_byte_sends_nothing(
    url: str, keyring: Keyring, admin: SessionStore
) -> None:
    """Validated, then revoked while the route prepares: the watch begins with the first
    chunk and finds the revocation already announced (the store's memory of it)."""
    pair = admin.login("alice", device=PHONE)
    app, _ = starlette_app(AsyncSessionStore.from_url(url, keyring=keyring))
    with TestClient(app) as client:
        # The app's store is followed from its first use: let its listener link up first
        # (until then, a watch begins with a check instead: see test_a_restart_...).
        with client.websocket_connect("/ws", headers=bearer(admin.login("bob", device=PHONE))):
            time.sleep(0.5)
        revoker = threading.Timer(0.1, admin.revoke, ("alice", pair.session_id))
        revoker.start()
        response = client.get("/late", headers=bearer(pair))
        revoker.join()
        assert response.status_code == 200 and response.text == ""


def test_close_live_false_leaves_connections_alone(
    url: str, keyring: Keyring, admin: SessionStore
) -> None:
    pair = admin.login("alice", device=PHONE)
    app, auth = starlette_app(AsyncSessionStore.from_url(url, keyring=keyring), close_live=False)
    assert auth.live is None
    with TestClient(app) as client, client.websocket_connect("/ws", headers=bearer(pair)) as ws:
        admin.revoke("alice", pair.session_id)
        time.sleep(0.3)
        assert echoes(ws)


def test_expiry_closes_the_websocket_at_the_session_deadline(
    url: str, keyring: Keyring, admin: SessionStore
) -> None:
    pair = admin.login("alice", device=PHONE, idle_ttl=1)
    app, _ = starlette_app(AsyncSessionStore.from_url(url, keyring=keyring))
    with TestClient(app) as client, client.websocket_connect("/ws", headers=bearer(pair)) as ws:
        opened = time.monotonic()
        closed = closed_within(ws, 5.0)
        assert (closed.code, closed.reason) == (4401, "Session expired")
        assert time.monotonic() - opened > 0.5


def test_a_session_kept_alive_elsewhere_keeps_its_websocket_open(
    url: str, keyring: Keyring, admin: SessionStore
) -> None:
    """At its first deadline the session was slid by a request: one check, a new timer."""
    pair = admin.login("alice", device=PHONE, idle_ttl=2)
    app, _ = starlette_app(AsyncSessionStore.from_url(url, keyring=keyring))
    with TestClient(app) as client, client.websocket_connect("/ws", headers=bearer(pair)) as ws:
        opened = time.monotonic()
        time.sleep(1.0)
        assert admin.touch("alice", pair.session_id)  # the deadline moves ~1 s later
        closed = closed_within(ws, 8.0)
        assert (closed.code, closed.reason) == (4401, "Session expired")
        assert time.monotonic() - opened > 2.5  # not at the first deadline


class Socket:
    """A WebSocket client driving an ASGI app on this event loop, without a network."""

    def __init__(self, app: Any, headers: dict[str, str], path: str = "/ws") -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        scope = {
            "type": "websocket",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": "ws",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
            "subprotocols": [],
            "state": {},
        }
        self.task = asyncio.get_running_loop().create_task(
            app(scope, self.inbox.get, self.outbox.put)
        )

    async def open(self) -> None:
        await self.inbox.put({"type": "websocket.connect"})
        accepted = await asyncio.wait_for(self.outbox.get(), 30)
        assert accepted["type"] == "websocket.accept", accepted

    async def echo(self, text: str) -> str:
        await self.inbox.put({"type": "websocket.receive", "text": text})
        message = await asyncio.wait_for(self.outbox.get(), 5)
        return str(message.get("text"))

    async def closed(self, seconds: float) -> dict[str, Any]:
        message = await asyncio.wait_for(self.outbox.get(), seconds)
        assert message["type"] == "websocket.close", message
        await self.inbox.put({"type": "websocket.disconnect", "code": message["code"]})
        await asyncio.wait_for(self.task, 5)
        return message

    async def leave(self) -> None:
        await self.inbox.put({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(self.task, 5)


IDLE = 2000
HEARTBEAT = {"hello", "multi", "exists", "exec", "watch"}  # the invalidation listener's


def calls(client: redis.Redis) -> dict[str, int]:
    """The server's count of each command since the last CONFIG RESETSTAT."""
    stats: dict[str, Any] = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


async def test_thousands_of_idle_connections_cost_no_redis_calls(
    server: LocalServer, private_url: str, keyring: Keyring
) -> None:
    """On a private server, whose INFO commandstats counts every command it ran."""
    with SessionStore.from_url(private_url, keyring=keyring) as admin:
        await _idle(server, private_url, keyring, admin)


async def _idle(server: LocalServer, url: str, keyring: Keyring, admin: SessionStore) -> None:
    pairs = [admin.login(f"user-{n}", device=PHONE) for n in range(IDLE)]
    store = AsyncSessionStore.from_url(url, keyring=keyring)
    app, auth = starlette_app(store)
    sockets = [Socket(app, bearer(pair)) for pair in pairs]
    await asyncio.gather(*(s.open() for s in sockets))
    assert auth.live is not None and len(auth.live) == IDLE
    assert await sockets[0].echo("hi") == "hi"
    await asyncio.sleep(0.5)  # the last handshakes' housekeeping, if any, is done
    watcher = redis.Redis.from_url(server.url, socket_timeout=5)
    try:
        watcher.config_resetstat()
        await asyncio.sleep(2.0)
        idle = calls(watcher)
    finally:
        watcher.close()
    idle.pop("config|resetstat", None)
    idle.pop("config", None)
    idle.pop("info", None)
    assert set(idle) <= HEARTBEAT, idle  # no PTTL, no script, no read per connection
    assert sum(idle.values()) < 200, idle  # a few heartbeats a second, whatever the count
    # They are all watched: one revocation closes exactly its own.
    await asyncio.to_thread(admin.revoke, "user-7", pairs[7].session_id)
    closed = await sockets[7].closed(BOUND)
    assert (closed["code"], closed["reason"]) == (4401, "Session revoked")
    assert len(auth.live) == IDLE - 1
    await asyncio.gather(*(s.leave() for n, s in enumerate(sockets) if n != 7))
    assert len(auth.live) == 0
    await store.close()


@pytest.mark.parametrize("fault", ["kill", "pause"])
def test_a_long_outage_closes_websockets_1013(
    fault: str, fault_server: LocalServer, keyring: Keyring
) -> None:
    """Redis unreachable past ``max_degraded_seconds``: validations would deny, so the
    connection is closed (1013, try again later), with no call made while it waited."""
    config = Config(max_degraded_seconds=1)
    with SessionStore.from_url(fault_server.url, keyring=keyring) as admin:
        pair = admin.login("alice", device=PHONE)
    store = AsyncSessionStore.from_url(fault_server.url, keyring=keyring, config=config)
    app, _ = starlette_app(store)
    try:
        with TestClient(app) as client:
            before = time.monotonic()  # Redis last answered the handshake's validation
            with client.websocket_connect("/ws", headers=bearer(pair)) as ws:
                assert echoes(ws)
                getattr(fault_server, fault)()
                # kill: the listener hears it at once; pause: 3 s without a heartbeat reply.
                closed = closed_within(ws, 10.0)
                assert (closed.code, closed.reason) == (1013, "Session store unavailable")
                assert time.monotonic() - before >= 1.0  # not before the degraded bound
    finally:
        if fault == "pause":
            fault_server.resume()


def test_fallback_deny_closes_websockets_as_soon_as_redis_is_unreachable(
    fault_server: LocalServer, keyring: Keyring
) -> None:
    with SessionStore.from_url(fault_server.url, keyring=keyring) as admin:
        pair = admin.login("alice", device=PHONE)
    store = AsyncSessionStore.from_url(
        fault_server.url, keyring=keyring, config=Config(fallback="deny")
    )
    app, _ = starlette_app(store)
    with TestClient(app) as client, client.websocket_connect("/ws", headers=bearer(pair)) as ws:
        assert echoes(ws)
        fault_server.kill()
        closed = closed_within(ws, 3.0)
        assert (closed.code, closed.reason) == (1013, "Session store unavailable")


def test_a_restart_that_lost_the_sessions_closes_their_websockets(
    fault_server: LocalServer, keyring: Keyring
) -> None:
    """Back within the degraded bound, but empty: the check after the link is back finds
    every session gone (announcements missed while it was down are caught the same way)."""
    with SessionStore.from_url(fault_server.url, keyring=keyring) as admin:
        pair = admin.login("alice", device=PHONE)
    store = AsyncSessionStore.from_url(fault_server.url, keyring=keyring)
    app, _ = starlette_app(store)
    with TestClient(app) as client, client.websocket_connect("/ws", headers=bearer(pair)) as ws:
        assert echoes(ws)
        fault_server.kill()
        time.sleep(0.3)
        fault_server.restart()
        closed = closed_within(ws, 10.0)
        # Gone before its deadline: revoked, as far as the client can tell (data loss logs
        # out the way a revocation does).
        assert (closed.code, closed.reason) == (4401, "Session revoked")


def test_a_store_made_before_fork_closes_the_childs_connections(
    url: str, keyring: Keyring, admin: SessionStore
) -> None:
    pair = admin.login("alice", device=PHONE)
    store = AsyncSessionStore.from_url(url, keyring=keyring)  # made in the parent
    app, _ = starlette_app(store)

    def child(pipe: Any) -> Any:
        async def serve() -> Any:
            ws = Socket(app, bearer(pair))
            await ws.open()
            assert await ws.echo("hi") == "hi"
            pipe.send(("open", None))
            closed = await ws.closed(10)
            await store.close()
            return [closed["code"], closed["reason"]]

        return asyncio.run(serve())

    pid, pipe = fork(child)
    expect(pipe, "open")
    admin.revoke("alice", pair.session_id)
    assert outcome(pid, pipe) == [4401, "Session revoked"]


def test_connections_on_two_event_loops_are_each_closed_on_their_own(
    url: str, keyring: Keyring, admin: SessionStore
) -> None:
    """Two threads, each with its loop, store and app: the one listener of the process
    hands each revocation to the loop that owns the connection."""
    pairs = {name: admin.login(name, device=PHONE) for name in ("alice", "bob")}
    opened = {name: threading.Event() for name in pairs}
    results: dict[str, Any] = {}

    def serve(name: str) -> None:
        async def main() -> None:
            store = AsyncSessionStore.from_url(url, keyring=keyring)
            app, _ = starlette_app(store)
            ws = Socket(app, bearer(pairs[name]))
            await ws.open()
            opened[name].set()
            closed = await ws.closed(10)
            results[name] = (closed["code"], asyncio.get_running_loop())
            await store.close()

        asyncio.run(main())

    threads = [threading.Thread(target=serve, args=(name,)) for name in pairs]
    for thread in threads:
        thread.start()
    for event in opened.values():
        assert event.wait(10)
    admin.revoke("bob", pairs["bob"].session_id)
    threads[1].join(5)
    assert "bob" in results and "alice" not in results
    admin.revoke("alice", pairs["alice"].session_id)
    threads[0].join(5)
    assert results["alice"][0] == results["bob"][0] == 4401
    assert results["alice"][1] is not results["bob"][1]


def litestar_app(store: AsyncSessionStore) -> tuple[Litestar, ls.SessionAuth]:
    auth = ls.SessionAuth(store)

    @websocket("/ws")
    async def echo(socket: LitestarSocket[Any, Any, Any]) -> None:
        await socket.accept()
        with contextlib.suppress(LitestarDisconnect):
            while True:
                await socket.send_text(await socket.receive_text())

    @get("/events")
    async def events() -> Stream:
        async def ticks() -> AsyncIterator[str]:
            n = 0
            while True:
                yield f"data: {n}\n\n"
                n += 1
                await asyncio.sleep(0.02)

        return Stream(ticks(), media_type="text/event-stream")

    return Litestar([echo, events], on_app_init=[auth.on_app_init]), auth


def test_litestar_websocket_and_stream_close_on_revoke(
    url: str, keyring: Keyring, admin: SessionStore
) -> None:
    watched, bystander = admin.login("alice", device=PHONE), admin.login("bob", device=PHONE)
    app, auth = litestar_app(AsyncSessionStore.from_url(url, keyring=keyring))
    with (
        LitestarClient(app) as client,
        client.websocket_connect("/ws", headers=bearer(watched)) as ws,
        client.websocket_connect("/ws", headers=bearer(bystander)) as other,
    ):
        ws.send_text("hi")
        assert ws.receive_text() == "hi"
        assert auth.live is not None and len(auth.live) == 2
        admin.revoke("alice", watched.session_id)
        started = time.monotonic()
        with pytest.raises(LitestarDisconnect) as caught:
            ws.receive(timeout=BOUND)
        assert time.monotonic() - started < BOUND
        assert (caught.value.code, caught.value.detail) == (4401, "Session revoked")
        other.send_text("still here")
        assert other.receive_text() == "still here"
        # Litestar's client reads the whole body: the revocation comes from a timer.
        revoker = threading.Timer(0.2, admin.revoke, ("bob", bystander.session_id))
        revoker.start()
        started = time.monotonic()
        body = client.get("/events", headers=bearer(bystander)).text
        revoker.join()
        assert time.monotonic() - started < 0.2 + BOUND
        assert body.startswith("data: 0") and body.count("data:") < 100
