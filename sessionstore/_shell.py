"""Construction shared by ``SessionStore`` and ``AsyncSessionStore``.

The only I/O started here is the shared invalidation listeners of the near cache
(background threads, one per followed server and namespace in a process; see ``_nearcache.follow``).
Live connections (the integrations' WebSockets and streams) watch their sessions through
the same listeners (``_watchers``): a store whose near cache is off follows them for that
alone, on the first watch.

Fork-safe: in a child forked after a store was made (gunicorn ``--preload``, Celery
prefork, ``multiprocessing`` with ``fork``), the store lets go of the parent's listeners
and locks at once, and acquires listeners of its own on first use (see ``_forked``).
"""

from __future__ import annotations

import threading
import time
from typing import Any, TypeVar

from sessionstore._engine.call import Call, step
from sessionstore._engine.engine import Engine
from sessionstore._engine.forks import AfterFork
from sessionstore._nearcache import follow
from sessionstore._nearcache.topology import Topology, reader_of, topology_of
from sessionstore._nearcache.watch import Watchers
from sessionstore._redis import redispy
from sessionstore._redis.driver import check_client
from sessionstore.errors import InvalidInput, StoreUnavailable
from sessionstore.events import EventHook
from sessionstore.models import Config
from sessionstore.tokens import Keyring

__all__ = ["StoreBase"]

S = TypeVar("S", bound="StoreBase")
T = TypeVar("T")


class StoreBase:
    """Holds the client, the engine and the ownership flag of both shells.

    A shell adds what is its own through two hooks: ``_new_client`` (the client
    ``from_url`` makes) and ``_start`` (its set-up around the client).
    """

    def __init__(
        self,
        client: Any,
        *,
        keyring: Keyring | None = None,
        config: Config | None = None,
        on_event: EventHook | None = None,
    ) -> None:
        if client is None:
            raise InvalidInput("client must be a Redis client; use from_url() to make one")
        check_client(client)
        self._client = client
        self._engine = Engine(Config() if config is None else config, keyring, on_event)
        # Clients the store creates are closed by close(); a user-owned one is left open.
        self._owns_client = False
        self._listener: follow.Followers | None = None
        # Set in a forked child whose store followed the parent's listeners: the next
        # call to Redis acquires this process' own first (``_chores``).
        self._rejoin = False
        self._rejoin_lock = threading.Lock()
        self._former: set[tuple[str, int]] = set()  # the primaries the sentinels named
        cfg = self._engine.config
        topology = topology_of(client)
        self._topology = topology
        # Whether the engine serves from the near cache (else listeners are followed only
        # for live connections' watches), and whether the store was closed.
        self._cached = bool(cfg.near_cache_size and cfg.touch_interval)
        self._closed = False
        try:
            if self._cached and topology is not None:
                self._follow(topology)
            self._start(client)
        except BaseException:
            self._detach()  # a store that failed to start leaves no listener thread behind
            raise
        _LIVE.add(self)

    def _follow(self, topology: Topology) -> None:
        """Take the process-wide listeners of ``topology`` and serve from their near cache."""
        cfg = self._engine.config
        listener = self._listener = follow.acquire(
            topology, cfg.namespace, cfg.near_cache_size, cfg.touch_interval
        )
        listener.subscribe(self._engine.published, self._engine.breaker.expedite, self._primary)
        if self._cached:
            self._engine.attach(listener.cache, listener.fresh, reader_of(self._client))

    def _watchers(self) -> Watchers | None:
        """Where live connections watch their sessions: this process' followers of the
        store's servers (followed now if they were not: a near cache that is off, a forked
        child's first watch). None when the client's servers cannot be told (no topology)
        or the store is closed."""
        if self._rejoin:
            self._rejoined()
        topology = self._topology
        if self._listener is None and topology is not None and not self._closed:
            with self._rejoin_lock:
                if self._listener is None:
                    self._follow(topology)
        listener = self._listener
        return None if listener is None else listener.watchers

    def _revoked_here(self, user_id: str, session_id: str) -> bool:
        """Whether this process has heard that the session was revoked (announced by any
        process, or revoked here): a watch begun late misses no announcement."""
        return self._engine.revoked.is_revoked(user_id, session_id, time.time())

    def _chores(self) -> Call[None] | None:
        """The engine's housekeeping call when one is due; first, in a forked child, the
        listeners of this process (asked before each trip to Redis, never on a cache hit)."""
        if self._rejoin:
            self._rejoined()
        return self._engine.housekeeping()

    def _rejoined(self) -> None:
        with self._rejoin_lock:
            topology = self._topology
            if self._rejoin and topology is not None:
                self._follow(topology)
            self._rejoin = False

    def _forked(self) -> None:
        """In a forked child: drop the parent's listeners (``follow`` abandons them) and
        every lock a parent thread may have held; rejoin on the next trip to Redis."""
        self._rejoin_lock = threading.Lock()
        self._engine.forked()
        if self._listener is not None:
            self._listener = None
            self._rejoin = True
        self._after_fork()

    @classmethod
    def from_url(
        cls: type[S],
        url: str,
        *,
        keyring: Keyring | None = None,
        config: Config | None = None,
        on_event: EventHook | None = None,
        **options: Any,
    ) -> S:
        """A store on a client it creates (and closes): no driver retries, bounded timeouts."""
        config = Config() if config is None else config
        # Nothing to close if the constructor refuses (say, a bad keyring): redis-py's
        # clients connect on first use (a sync cluster client reads the slot map, then
        # lets that connection go).
        store = cls(
            cls._new_client(url, config, options), keyring=keyring, config=config, on_event=on_event
        )
        store._owns_client = True
        return store

    @staticmethod
    def _new_client(url: str, config: Config, options: dict[str, Any]) -> Any:
        """The redis-py client ``from_url`` makes (sync or asyncio: the shell's own)."""
        raise NotImplementedError

    def _start(self, client: Any) -> None:
        """The shell's own set-up around ``client`` (its fast path, its batcher)."""

    def _after_fork(self) -> None:
        """The shell's own reset in a forked child (its batcher)."""

    def _primary(self, address: tuple[str, int]) -> None:
        """The sentinels name ``address``: if the pool is still on a former primary, its
        connections go (called from the watcher thread, about once a second).

        redis-py's Sentinel pool asks the sentinels for the primary only when it connects,
        so open connections would keep reading (stale) and writing (lost) on a replaced
        primary until the sentinels reconfigure it, seconds later. Only a former primary
        counts (a pool that names the node otherwise, say ``force_master_ip``, is left be);
        a reconnection through a sentinel that has not heard of the switch yet is caught
        at the next look.
        """
        known = redispy.primary_address(self._client.connection_pool)
        if known is not None and known != address and known in self._former:
            self._let_go()
        self._former.add(address)

    def _unconfirmed(self) -> bool:
        """After a switchover, whether the pool is on a primary the sentinels replaced.

        Asked after a revocation: its connection may have been opened through a sentinel
        that had not heard of the switch yet, and the old primary acknowledges writes it
        loses when it is reconfigured. Then the caller is told (``StoreUnavailable``).
        """
        listener = self._listener
        if listener is None or len(self._former) < 2:
            return False  # no switchover seen
        followed = listener.servers
        if not followed:
            return False  # nothing followed yet (a forked child's new followers): no verdict
        known = redispy.primary_address(self._client.connection_pool)
        return known is not None and known not in followed

    def _after(self, call: Call[T], reply: Any) -> Call[T] | T:
        """What ``reply`` makes of ``call`` (``step``): the follow-up call, or the result.

        A write confirmed by a primary the sentinels replaced raises ``StoreUnavailable``.
        """
        if call.durable and self._unconfirmed():
            raise self._replaced()
        return step(call, reply)

    def _replaced(self) -> StoreUnavailable:
        self._let_go()
        return StoreUnavailable(
            "the write may have reached a primary the sentinels replaced: not confirmed"
        )

    def _let_go(self) -> None:
        """Close every connection of the client's pool (in use or idle)."""
        self._client.connection_pool.disconnect()

    def _detach(self) -> None:
        """Give back the shared invalidation listener (the last store stops it)."""
        with self._rejoin_lock:
            self._rejoin = False  # a closed store rejoins nothing
            self._closed = True
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.unsubscribe(
                self._engine.published, self._engine.breaker.expedite, self._primary
            )
            self._engine.near = None
            follow.release(listener)

    @property
    def config(self) -> Config:
        """The store's configuration."""
        return self._engine.config

    @property
    def keyring(self) -> Keyring:
        """The store's keyring (raises ``InvalidInput`` when it has none)."""
        return self._engine.keyring

    @property
    def client(self) -> Any:
        """The underlying redis-py client."""
        return self._client

    def __repr__(self) -> str:
        return f"{type(self).__name__}(namespace={self.config.namespace!r})"


_LIVE: AfterFork[StoreBase] = AfterFork(lambda store: store._forked())
