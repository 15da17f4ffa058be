"""Helpers shared by the suites: the store fixtures (one test body serves sync and async),
the public surface they type (``StoreApi``), and the one door into a store's internals.

The ``store`` fixture is parametrized over ``sync`` and ``async``. Tests are written once,
as coroutines that await the store's methods; for the sync store an adapter runs the
real synchronous method and hands back an awaitable of its result. Either way the test
sees a ``StoreApi``: the public surface of ``SessionStore``/``AsyncSessionStore``, awaited.

What a test observes goes through public doors: the store's methods and events, and the
server's own accounts (``INFO commandstats``, ``CLIENT LIST``, the keyspace; see
``observe.py``). Where an invariant can only be seen from inside (the near cache holding
an entry, the batcher's round trips, the sockets a forked child holds), the test asks
``internals(store)``: the only place the suites read a store's private attributes, so a
refactoring of the package has one file of tests to follow.

No test module imports another: what two suites share lives here, or in the helper
modules beside it, each for one kind of suite:

- ``conftest.py``: the engine harness (servers per engine, ``redis_url``, ``redis_client``,
  the keyspace audit, private servers for faults); it loads this module and ``forge.py``
  as pytest plugins, so their fixtures serve every suite;
- ``observe.py``: what the suites observe from outside a store (commands the server ran,
  the keyspace, answers over time);
- ``forge.py``: hand-made JOSE pieces for the token suites (fixtures ``ctx``, ``forge``),
  and ``hostile.py``/``hostile_body.py``: the table of hostile tokens;
- ``load.py``: continuous load, failovers and a Sentinel-followed store for the topology
  suites;
- ``web_support.py``: one private server per module for the integration, CLI, rate
  limiter and metrics suites;
- ``forks.py``: forked children (the fork suite, and the Django store made per process).
"""

from __future__ import annotations

import asyncio
import functools
import re
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

import pytest
import redis

from observe import script_calls, wait_for
from sessionstore import (
    AsyncSessionStore,
    Config,
    Device,
    DeviceSessions,
    HistoryEntry,
    Keyring,
    Principal,
    Session,
    SessionStore,
    TokenPair,
)
from sessionstore.testing import Engine

if TYPE_CHECKING:
    from sessionstore._engine.call import Call
    from sessionstore._engine.engine import Engine as StoreEngine
    from sessionstore._nearcache.cache import NearCache
    from sessionstore._nearcache.follow import Followers
    from sessionstore._redis.batch import Batcher

__all__ = [
    "PASSWORD",
    "Internals",
    "StoreApi",
    "StoreFactory",
    "SyncAdapter",
    "acl_user_url",
    "acl_words",
    "internals",
    "make_store",
    "open_store",
    "shell_of",
    "single_node",
    "store",
    "warm",
    "wrong_type_session",
]


class StoreApi(Protocol):
    """The public surface of a store the suites use, awaited in both modes.

    ``AsyncSessionStore`` is one; ``SyncAdapter`` around a ``SessionStore`` acts as one.
    """

    @property
    def config(self) -> Config: ...
    @property
    def keyring(self) -> Keyring: ...
    @property
    def client(self) -> Any: ...

    async def create(
        self,
        user_id: str,
        *,
        device: Device,
        data: Mapping[str, Any] | None = None,
        idle_ttl: int | None = None,
        absolute_ttl: int | None = None,
    ) -> Session: ...
    async def login(
        self,
        user_id: str,
        *,
        device: Device,
        claims: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        idle_ttl: int | None = None,
        absolute_ttl: int | None = None,
        methods: str | Sequence[str] = (),
        level: int = 0,
        persistent: bool = True,
        max_sessions: int | None = None,
        at_limit: Literal["evict", "refuse"] | None = None,
    ) -> TokenPair: ...
    async def step_up(self, user_id: str, session_id: str, *, method: str, level: int) -> str: ...
    async def validate(
        self, access_token: str, *, ip: str | None = None, user_agent: str | None = None
    ) -> Principal: ...
    async def refresh(self, refresh_token: str) -> TokenPair: ...
    async def logout(self, access_token: str) -> bool: ...
    async def get(self, user_id: str, session_id: str) -> Session | None: ...
    async def touch(self, user_id: str, session_id: str) -> bool: ...
    async def update(
        self,
        user_id: str,
        session_id: str,
        *,
        data: Mapping[str, Any] | None = None,
        claims: Mapping[str, Any] | None = None,
    ) -> Session: ...
    async def rotate(
        self, user_id: str, session_id: str, *, claims: Mapping[str, Any] | None = None
    ) -> TokenPair: ...
    async def rotate_session(
        self, user_id: str, session_id: str, *, claims: Mapping[str, Any] | None = None
    ) -> Session: ...
    async def revoke(self, user_id: str, session_id: str) -> bool: ...
    async def revoke_device(self, user_id: str, device_id: str) -> int: ...
    async def revoke_user(
        self,
        user_id: str,
        *,
        keep: str | None = None,
        reason: Literal["user", "password"] = "user",
    ) -> int: ...
    async def history(self, user_id: str, *, limit: int = 100) -> list[HistoryEntry]: ...
    async def sessions(self, user_id: str) -> list[Session]: ...
    async def devices(self, user_id: str) -> list[DeviceSessions]: ...
    async def close(self) -> None: ...


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


class _AsyncStore(AsyncSessionStore):
    """An ``AsyncSessionStore`` that says its mode, as ``SyncAdapter`` does."""

    mode = "async"


PHONE = Device(id="phone-1", name="Pixel", user_agent="Mozilla/5.0 (Linux; Android 14)")
"""The device of the helpers' own sessions."""

StoreFactory = Callable[..., StoreApi]
"""``factory(url, config=..., **kw)`` (``open_store``) or ``factory(config=...)``
(``make_store``): a store of the test's mode."""


def shell_of(store: object) -> SessionStore | AsyncSessionStore:
    """The real store behind a test store of either mode."""
    shell = store.inner if isinstance(store, SyncAdapter) else store
    assert isinstance(shell, SessionStore | AsyncSessionStore), shell
    return shell


class Internals:
    """The one door into a store's private attributes, for invariants no public
    observation shows. Each member says which invariant needs it; keep the list short."""

    def __init__(self, store: object) -> None:
        self.shell = shell_of(store)

    @property
    def engine(self) -> StoreEngine:
        """The engine (bulk-building calls at a scale the public API takes minutes for;
        the degraded-mode revocation memory; the locks a fork must renew)."""
        return self.shell._engine

    @property
    def near(self) -> NearCache:
        """The near cache (whether it holds an entry, or trusts its links, at a given
        moment: a hit itself is public, see ``cache_serves``, its absence is not)."""
        near = self.shell._engine.near
        assert near is not None, "the store has no near cache"
        return near

    def cached(self) -> int:
        """How many sessions the near cache holds now (0 when it has none)."""
        near = self.shell._engine.near
        return 0 if near is None else len(near)

    def holds(self, key: str) -> bool:
        """Whether the near cache serves the session hash ``key`` now."""
        near = self.shell._engine.near
        return near is not None and near.get(key, time.monotonic()) is not None

    @property
    def followers(self) -> Followers:
        """The listeners behind the near cache (which servers they follow now)."""
        followers = self.shell._listener
        assert followers is not None, "the store follows no server"
        return followers

    def followed_ports(self) -> set[int]:
        """The ports of the servers the near cache follows now."""
        return {port for _, port in self.followers.servers}

    def listener_sockets(self) -> list[socket.socket]:
        """The invalidation sockets behind the near cache (a forked child must not read
        the parent's)."""
        found = [listener._sock for listener in self.followers._listeners.values()]
        return [sock for sock in found if sock is not None]

    def socket_names(self) -> set[tuple[str, int]]:
        """The local addresses of the connections the store holds for its calls (the
        direct path's and the pool's): a forked child must open its own."""
        found: set[tuple[str, int]] = set()
        shell = self.shell
        pool = shell._client.connection_pool
        if isinstance(shell, SessionStore):
            conns = list(shell._direct._held) if shell._direct is not None else []
            for conn in [*conns, *pool._available_connections]:
                if conn._sock is not None:
                    found.add(conn._sock.getsockname())
            return found
        direct = shell._batcher._direct
        held = [direct._conn] if direct is not None else []
        for conn in [*held, *pool._available_connections, *pool._in_use_connections]:
            if conn is not None and conn._writer is not None:
                found.add(conn._writer.get_extra_info("sockname"))
        return found

    def locks(self) -> list[Any]:
        """Every lock the store's critical sections take, the followers' registry
        included (a child forked while a parent thread held one must get its own)."""
        from sessionstore._nearcache import follow

        engine = self.shell._engine
        assert engine.tokens is not None
        return [
            follow._registry_lock,
            engine.revoked._lock,
            engine.marker._lock,
            engine.tokens._lock,
        ]

    def watch_topology_every(self, seconds: float) -> None:
        """How often the followers re-read the topology (a test widens the window in which
        a new primary is not followed yet)."""
        self.followers._refresh = seconds

    @property
    def batcher(self) -> Batcher:
        """The async store's batcher (how many round trips a loop turn took)."""
        assert isinstance(self.shell, AsyncSessionStore), "only the async store batches"
        return self.shell._batcher

    def takes_direct_path(self) -> bool:
        """Whether validations bypass redis-py's client layer."""
        if isinstance(self.shell, SessionStore):
            return self.shell._direct is not None
        return self.shell._batcher.direct

    def run(self, call: Call[Any]) -> Any:
        """Run one engine call through the sync shell (a follow-up step, by hand)."""
        assert isinstance(self.shell, SessionStore), "a sync store runs calls inline"
        return self.shell._run(call)


def internals(store: object) -> Internals:
    """The private view of ``store`` (either mode); see ``Internals``."""
    return Internals(store)


async def warm(store: StoreApi, token: str) -> None:
    """Validate until the near cache holds ``token``'s session."""
    await store.validate(token)
    view = internals(store)
    assert wait_for(lambda: view.near.trusted(time.monotonic()))
    for _ in range(50):
        await store.validate(token)
        if view.cached():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the near cache never took the session")


async def wrong_type_session(store: StoreApi, redis_client: redis.Redis) -> TokenPair:
    """A session whose hash was replaced by a string: validating it is a ``ScriptError``."""
    broken = await store.login("user-b", device=PHONE)
    key = next(
        k for k in redis_client.scan_iter(match="ss:*:s:*") if broken.session_id.encode() in k
    )
    redis_client.delete(key)
    redis_client.set(key, "not a hash", px=60_000)
    return broken


def single_node(engine: Engine) -> None:
    """Skip on a cluster: the behaviour under test is a single server's."""
    if engine.cluster is not None:
        pytest.skip("single-server behaviour (a cluster client takes redis-py's pipeline)")


PASSWORD = "test-only-password"
"""The password of SECURITY.md's ACL user on the tests' servers."""
_SECURITY = Path(__file__).resolve().parents[1] / "SECURITY.md"


def acl_words() -> list[str]:
    """The rules of SECURITY.md's ``ACL SETUSER sessionstore`` line (password: PASSWORD)."""
    found = re.search(r"^\s*ACL SETUSER sessionstore (.+)$", _SECURITY.read_text("utf-8"), re.M)
    assert found is not None, "SECURITY.md lost its ACL SETUSER line"
    return found.group(1).replace(">CHANGE-ME", f">{PASSWORD}").split()


def acl_user_url(url: str, admin: redis.Redis) -> str:
    """Create SECURITY.md's ACL user on ``admin``'s server; ``url`` logged in as it."""
    admin.execute_command("ACL", "SETUSER", "sessionstore", *acl_words())  # type: ignore[no-untyped-call]
    return url.replace("redis://", f"redis://sessionstore:{PASSWORD}@")


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    """Which API the test drives."""
    return str(request.param)


@pytest.fixture
def keyring() -> Keyring:
    """A fresh HS256 keyring."""
    return Keyring.generate("HS256")


@pytest.fixture
async def open_store(mode: str, keyring: Keyring) -> AsyncIterator[StoreFactory]:
    """Build stores of the test's mode on any URL (no engine): ``open_store(url, config=...)``.

    For tests that bring their own topology (a private cluster, a Sentinel group).
    """
    made: list[SessionStore | AsyncSessionStore] = []

    def factory(url: str, *, config: Config | None = None, **kw: Any) -> StoreApi:
        kw.setdefault("keyring", keyring)
        if mode == "sync":
            inner = SessionStore.from_url(url, config=config, **kw)
            made.append(inner)
            return cast(StoreApi, SyncAdapter(inner))
        made.append(_AsyncStore.from_url(url, config=config, **kw))
        return cast(StoreApi, made[-1])

    yield factory
    for item in made:
        if isinstance(item, AsyncSessionStore):
            await item.close()
        else:
            item.close()


@pytest.fixture
def make_store(open_store: StoreFactory, redis_url: str) -> StoreFactory:
    """Build stores of the test's mode on the engine's server: ``make_store(config=...)``."""

    def factory(*, config: Config | None = None, url: str | None = None, **kw: Any) -> StoreApi:
        return open_store(url or redis_url, config=config, **kw)

    return factory


@pytest.fixture
def store(
    make_store: StoreFactory, keyspace_audit: Callable[..., None], redis_client: redis.Redis
) -> Iterator[StoreApi]:
    """A store with the default Config; the keyspace is audited after the test."""
    yield make_store()
    keyspace_audit(redis_client, "ss")


def served_from_cache(store: SessionStore, token: str, seconds: float = 10) -> bool:
    """Validate ``token`` until the near cache serves it (twenty validations send no
    script to the server) or ``seconds`` pass: whether it does."""

    def hot() -> bool:
        before = script_calls(store.client)
        for _ in range(20):
            store.validate(token)
        return script_calls(store.client) == before

    return wait_for(hot, seconds)


def validate_until_rejected(url: str, jwks: dict[str, Any], token: str, conn: Any) -> None:
    """Child process: validate ``token`` hot until it is refused, then report when.

    Sends ("warm", 0) once the near cache serves it (no command reaches the server), then,
    after the parent says "go" and revokes, ("rejected", monotonic_ns) at the first refusal.
    """
    from sessionstore import InvalidToken

    with SessionStore.from_url(url, keyring=Keyring.from_jwks(jwks)) as store:
        if not served_from_cache(store, token):
            conn.send(("cold", 0))
            return
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
