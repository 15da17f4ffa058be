"""Store fixtures shared by the integration suites: one test body serves sync and async.

The ``store`` fixture is parametrized over ``sync`` and ``async``. Tests are written once,
as coroutines that await the store's methods; for the sync store an adapter runs the
real synchronous method and hands back an awaitable of its result.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster

from sessionstore import AsyncSessionStore, Config, Keyring, SessionStore

__all__ = [
    "StoreFactory",
    "SyncAdapter",
    "make_store",
    "open_store",
    "script_calls",
    "session_keys",
    "store",
    "wait_for",
]


class SyncAdapter:
    """Wraps a ``SessionStore`` so its methods can be awaited like the async store's."""

    mode = "sync"

    def __init__(self, inner: SessionStore) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        @functools.wraps(attr)
        async def call(*args: Any, **kwargs: Any) -> Any:
            return attr(*args, **kwargs)

        return call


StoreFactory = Callable[..., Awaitable[Any]]


def session_keys(client: redis.Redis) -> list[bytes]:
    """Every key of the default namespace that belongs to a user (the store's own keys,
    the marker and the near cache's database watch key, excluded: their tags hold a '!')."""
    return sorted(k for k in client.scan_iter(match="ss:*") if b":{!" not in k)


# Commands no request of ours sent: INFO itself, replicas' REPLCONF ACK (every second), and
# what a client sends when it connects or maps a cluster (HELLO, CLIENT SETINFO, COMMAND,
# CLUSTER SLOTS: a sync RedisCluster does that on construction).
# The near cache's invalidation connection adds its handshake (HELLO, CLIENT SETNAME,
# CLIENT TRACKING, SUBSCRIBE, and outside a cluster SELECT, SET NX and WATCH of its watch
# key) and a heartbeat every 0.25 s (HELLO, then outside a cluster MULTI EXISTS EXEC WATCH):
# none is a request of ours (the store itself never sends a plain SET, EXISTS or MULTI).
_BACKGROUND = {
    "cmdstat_info",
    "cmdstat_replconf",
    "cmdstat_hello",
    "cmdstat_client|setinfo",
    "cmdstat_client|setname",
    "cmdstat_client|tracking",
    "cmdstat_subscribe",
    "cmdstat_ping",
    "cmdstat_select",
    "cmdstat_set",
    "cmdstat_multi",
    "cmdstat_exists",
    "cmdstat_exec",
    "cmdstat_watch",
}
_BACKGROUND_PREFIXES = ("cmdstat_command", "cmdstat_cluster|")


def _counted(name: str) -> bool:
    return name not in _BACKGROUND and not name.startswith(_BACKGROUND_PREFIXES)


def script_calls(client: redis.Redis) -> int:
    """How many commands the server (every primary of a cluster) has run for clients so far."""
    if isinstance(client, RedisCluster):
        found = client.info("commandstats", target_nodes=RedisCluster.PRIMARIES)
        # Per node, unless the client sums INFO itself (LocalCluster.client() does).
        merged = any(str(key).startswith("cmdstat_") for key in found)
        nodes = [found] if merged else list(found.values())
    else:
        nodes = [client.info("commandstats")]
    return sum(int(v["calls"]) for stats in nodes for k, v in stats.items() if _counted(k))


def wait_for(predicate: Callable[[], bool], seconds: float = 5.0) -> bool:
    """Poll ``predicate`` until it holds or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


async def cache_serves(store: Any, token: str, admin: Any, seconds: float = 5.0) -> bool:
    """Whether 20 validations in a row are answered without a command reaching Redis.

    Retried for a few seconds: on a loaded machine a heartbeat reply can come later than
    the trust window, and then the store rightly asks Redis instead.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        before = script_calls(admin)
        for _ in range(20):
            await store.validate(token)
        if script_calls(admin) == before:
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    """Which API the test drives."""
    return str(request.param)


@pytest.fixture
def keyring() -> Keyring:
    """A fresh HS256 keyring."""
    return Keyring.generate("HS256")


@pytest.fixture
async def open_store(mode: str, keyring: Keyring) -> AsyncIterator[Callable[..., Any]]:
    """Build stores of the test's mode on any URL (no engine): ``open_store(url, config=...)``.

    For tests that bring their own topology (a private cluster, a Sentinel group).
    """
    made: list[Any] = []

    def factory(url: str, *, config: Config | None = None, **kw: Any) -> Any:
        kw.setdefault("keyring", keyring)
        if mode == "sync":
            made.append(SessionStore.from_url(url, config=config, **kw))
            return SyncAdapter(made[-1])
        made.append(AsyncSessionStore.from_url(url, config=config, **kw))
        made[-1].mode = "async"
        return made[-1]

    yield factory
    for item in made:
        if isinstance(item, AsyncSessionStore):
            await item.close()
        else:
            item.close()


@pytest.fixture
def make_store(open_store: Callable[..., Any], redis_url: str) -> Callable[..., Any]:
    """Build stores of the test's mode on the engine's server: ``make_store(config=...)``."""

    def factory(*, config: Config | None = None, url: str | None = None, **kw: Any) -> Any:
        return open_store(url or redis_url, config=config, **kw)

    return factory


@pytest.fixture
def store(
    make_store: Callable[..., Any], keyspace_audit: Callable[..., None], redis_client: redis.Redis
) -> Iterator[Any]:
    """A store with the default Config; the keyspace is audited after the test."""
    yield make_store()
    keyspace_audit(redis_client, "ss")


def validate_until_rejected(url: str, jwks: dict[str, Any], token: str, conn: Any) -> None:
    """Child process: validate ``token`` hot until it is refused, then report when.

    Sends ("warm", hot_calls_made) once the near cache serves it, then, after the parent
    says "go" and revokes, ("rejected", monotonic_ns) at the first refusal.
    """
    import time

    from sessionstore import InvalidToken, Keyring

    with SessionStore.from_url(url, keyring=Keyring.from_jwks(jwks)) as store:
        store.validate(token)
        deadline = time.monotonic() + 10
        while store._engine.near is None or len(store._engine.near) == 0:
            if time.monotonic() > deadline:
                conn.send(("cold", 0))
                return
            time.sleep(0.01)
            store.validate(token)
        conn.send(("warm", 0))
        conn.recv()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                store.validate(token)
            except InvalidToken:
                conn.send(("rejected", time.monotonic_ns()))
                return
        conn.send(("timeout", 0))
